"""LangChain's own standard integration tests for chat models (``langchain-tests``), run through
the adapter against the real SmolLM2-135M-Instruct, configured as langchain-ollama configures
them for Ollama (JSON mode and image inputs on, no ``tool_choice``).

The model is ``smollm2-capped``, a derived model made here as a user would tune a small model:
``PARAMETER num_predict 256`` (the suite sets no options, and at temperature 0 a 135M model can
loop until its context is full), ``temperature 0`` (stable answers) and ``repeat_penalty 1.2``
(without it SmolLM2 repeats one word inside a JSON string until the cap, and the structured
output is cut). What a 135M model cannot do is declared through the suite's own properties,
each with its reason; nothing is skipped by a marker. docs/architecture.md ("Tests") says what
passes.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import httpx
import pytest
from langchain_ollama import ChatOllama
from langchain_tests.integration_tests import ChatModelIntegrationTests

BASE = "smollm2:135m"
CAPPED = "smollm2-capped"


class TestChatOllamaThroughTheAdapter(ChatModelIntegrationTests):
    base_url = ""

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _adapter(cls, live_adapter: str) -> None:
        """The live adapter, with the capped model derived from SmolLM2 (as a user would)."""
        resp = httpx.post(
            f"{live_adapter}/api/create",
            json={
                "model": CAPPED,
                "from": BASE,
                "parameters": {"num_predict": 256, "temperature": 0, "repeat_penalty": 1.2},
                "stream": False,
            },
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        cls.base_url = live_adapter

    @property
    def chat_model_class(self) -> type[ChatOllama]:
        return ChatOllama

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": CAPPED, "base_url": self.base_url}

    # As langchain-ollama's own standard tests declare Ollama's chat models.
    @property
    def supports_image_inputs(self) -> bool:
        """Ollama answers images sent to a text-only model (as a marker in the prompt); the
        adapter does the same, so the suite's image test runs against SmolLM2."""
        return True

    @property
    def has_tool_choice(self) -> bool:
        return False

    # What a 135M model cannot do: declared, with the reason.
    @property
    def has_tool_calling(self) -> bool:
        """SmolLM2 has ``tools`` (served with the template of Ollama's library model), but at
        135M it answers instead of calling: the suite's tool tests expect a call it never
        makes. ``test_real_models.py`` forces one (``format``) and checks Ollama's shape."""
        return False

    @property
    def supports_json_mode(self) -> bool:
        """langchain-ollama declares it for Ollama's models; SmolLM2-135M, asked for a joke as
        JSON with 'setup' and 'punchline' keys in plain JSON mode (no schema), writes other
        keys (``{"set": {"name": ...}}``). With a schema (``format`` as an object) it keeps to
        the keys: the structured-output tests run and pass."""
        return False

    @pytest.fixture(autouse=True)
    def _offline_picture(
        self, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The suite's ``test_image_inputs`` downloads its picture, a PNG, from GitHub; no
        network reaches this machine, so there that download answers with a PNG made here.
        The test itself runs as written (both message formats, through the adapter)."""
        if not request.node.name.startswith("test_image_inputs"):
            return
        picture = png(16, 16)

        def offline_get(url: str, **_: Any) -> httpx.Response:
            assert url.endswith(".png"), url
            return httpx.Response(200, content=picture, request=httpx.Request("GET", url))

        monkeypatch.setattr(httpx, "get", offline_get)


def png(width: int, height: int) -> bytes:
    """A real RGB PNG (a gradient), written with the standard library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\0" + bytes(v for x in range(width) for v in (x * 16 % 256, y * 16 % 256, 128))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
