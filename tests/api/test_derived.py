"""Derived models (Modelfiles): create, copy, show, use and delete them, persisted in
ADAPTER_MODELS_DIR and shared by every app reading that folder (the app against the fake)."""

from __future__ import annotations

import errno
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from adapter.config import Settings
from tests.api.conftest import serve
from tests.fake_vllm import FakeVLLM

HI = [{"role": "user", "content": "Hello"}]
NOTES = {
    "model": "notes",
    "from": "llama3.2",
    "system": "You write meeting notes.",
    "parameters": {"temperature": 0.2, "num_predict": 42, "stop": ["END", "STOP"]},
    "messages": [
        {"role": "user", "content": "What do you do?"},
        {"role": "assistant", "content": "I write notes."},
    ],
}


def prepare(folder: Path, files: dict[str, str]) -> None:
    """Modelfiles written by hand, as ops would (a bare name is ``name:latest``)."""
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.modelfile").write_text(text)


def text_of(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def ndjson(resp: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in resp.content.splitlines() if line]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
async def app(fake: FakeVLLM, folder: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        vllm_url=await fake.url(), model_aliases="llama3.2=tiny-llm", models_dir=str(folder)
    )
    async for c in serve(settings):
        yield c


async def test_create_streams_statuses_ending_in_success_and_keeps_a_modelfile(
    app: httpx.AsyncClient, folder: Path
) -> None:
    resp = await app.post("/api/create", json=NOTES)
    statuses = [line["status"] for line in ndjson(resp)]
    assert statuses[0].startswith("using existing layer sha256:")
    assert statuses[-2:] == ["writing manifest", "success"]
    text = text_of(folder / "notes%3Alatest.modelfile") or ""
    assert text.startswith("FROM tiny-llm:latest\n")  # the alias resolved to what vLLM serves
    assert "SYSTEM You write meeting notes.\n" in text
    assert "PARAMETER stop END\nPARAMETER stop STOP\n" in text
    tags = {m["model"]: m for m in (await app.get("/api/tags")).json()["models"]}
    assert tags["notes:latest"]["details"]["parent_model"] == "tiny-llm:latest"
    ps = [m["model"] for m in (await app.get("/api/ps")).json()["models"]]
    assert "notes:latest" in ps


async def test_a_derived_model_applies_its_settings_on_every_call(
    app: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    await app.post("/api/create", json={**NOTES, "stream": False})
    await app.post("/api/chat", json={"model": "notes", "messages": HI, "stream": False})
    sent = fake.last
    assert sent["model"] == "tiny-llm"
    assert sent["messages"] == [
        {"role": "system", "content": "You write meeting notes."},
        {"role": "user", "content": "What do you do?"},
        {"role": "assistant", "content": "I write notes."},
        *HI,
    ]
    assert (sent["temperature"], sent["max_tokens"], sent["stop"]) == (0.2, 42, ["END", "STOP"])
    # The request's own options and system message win over the model's (as in Ollama, the
    # model's messages still come first).
    own = [{"role": "system", "content": "Be terse."}, *HI]
    body = {"model": "notes:latest", "messages": own, "options": {"num_predict": 7}}
    await app.post("/api/chat", json={**body, "stream": False})
    assert [m["content"] for m in fake.last["messages"]] == [
        "What do you do?",
        "I write notes.",
        "Be terse.",
        "Hello",
    ]
    assert fake.last["max_tokens"] == 7 and fake.last["temperature"] == 0.2
    # Generate takes the system prompt and the leading messages too.
    await app.post("/api/generate", json={"model": "notes", "prompt": "go", "stream": False})
    assert fake.last["messages"][0]["content"] == "You write meeting notes."
    assert fake.last["messages"][-1] == {"role": "user", "content": "go"}
    assert fake.last["max_tokens"] == 42
    # And the OpenAI-compatible chat, as in Ollama.
    await app.post("/v1/chat/completions", json={"model": "notes", "messages": HI})
    assert fake.last["messages"][0]["role"] == "system" and fake.last["max_tokens"] == 42


async def test_show_tells_the_derived_models_settings(app: httpx.AsyncClient) -> None:
    await app.post("/api/create", json={**NOTES, "template": "{{ .Prompt }}", "license": "MIT"})
    shown = (await app.post("/api/show", json={"model": "notes"})).json()
    assert shown["system"] == "You write meeting notes."
    assert shown["license"] == "MIT"
    assert shown["messages"] == NOTES["messages"]
    params = shown["parameters"].splitlines()
    assert [p.split()[0] for p in params] == [
        "temperature",
        "num_predict",
        "stop",
        "stop",
        "num_ctx",
    ]
    assert params[2].split(None, 1)[1] == '"END"'
    modelfile = shown["modelfile"]
    assert "FROM tiny-llm:latest\n" in modelfile and "PARAMETER num_predict 42\n" in modelfile
    assert shown["details"]["parent_model"] == "tiny-llm:latest"


async def test_create_from_a_modelfile_and_from_another_derived_model(
    app: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    text = 'FROM tiny-llm\n# a comment\nSYSTEM """Line one.\nLine two."""\nPARAMETER top_k 5\n'
    resp = await app.post("/api/create", json={"model": "poet", "modelfile": text, "stream": False})
    assert resp.json() == {"status": "success"}
    child = {"model": "poet-hot", "from": "poet", "parameters": {"temperature": 1.5}}
    await app.post("/api/create", json={**child, "stream": False})
    await app.post("/api/chat", json={"model": "poet-hot", "messages": HI, "stream": False})
    assert fake.last["messages"][0]["content"] == "Line one.\nLine two."
    assert (fake.last["top_k"], fake.last["temperature"]) == (5, 1.5)  # both layers apply


async def test_copy_makes_a_new_name_and_delete_removes_only_derived_models(
    app: httpx.AsyncClient, folder: Path
) -> None:
    await app.post("/api/create", json={**NOTES, "stream": False})
    resp = await app.post("/api/copy", json={"source": "notes", "destination": "minutes"})
    assert (resp.status_code, resp.content) == (200, b"")
    shown = (await app.post("/api/show", json={"model": "minutes"})).json()
    assert shown["system"] == "You write meeting notes."
    resp = await app.post("/api/copy", json={"source": "tiny-llm", "destination": "plain"})
    assert resp.status_code == 200
    assert (await app.post("/api/show", json={"model": "plain"})).status_code == 200
    resp = await app.request("DELETE", "/api/delete", json={"model": "minutes"})
    assert (resp.status_code, resp.content) == (200, b"")
    assert text_of(folder / "minutes%3Alatest.modelfile") is None
    assert (await app.post("/api/show", json={"model": "minutes"})).status_code == 404
    served = await app.request("DELETE", "/api/delete", json={"model": "tiny-llm"})
    assert served.status_code == 403 and "keeps serving" in served.json()["error"]
    chat = {"model": "tiny-llm", "messages": HI, "stream": False}
    assert (await app.post("/api/chat", json=chat)).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"model": "x", "files": {"m.gguf": "sha256:" + "a" * 64}}, 400, "weight files"),
        ({"model": "x", "from": "tiny-llm", "adapters": {"a": "sha256:1"}}, 400, "LoRA"),
        ({"model": "x", "from": "tiny-llm", "quantize": "q4_K_M"}, 400, "quantize"),
        ({"model": "x", "from": "tiny-llm", "draft_files": {"d.gguf": "sha256:1"}}, 400, "draft model"),
        ({"model": "x", "from": "tiny-llm", "draft_quantize": "q4_K_M"}, 400, "draft model"),
        ({"model": "x"}, 400, "neither 'from' or 'files' was specified"),
        ({"model": "x", "from": "nope"}, 404, "model 'nope' not found"),
        ({"model": "tiny-llm", "from": "tiny-llm"}, 400, "a name of its own"),
        ({"model": "bad name", "from": "tiny-llm"}, 400, "invalid model name"),
        ({"model": "x", "from": "tiny-llm", "parameters": {"bogus": 1}}, 400, 'unknown parameter "bogus"'),
        ({"model": "x", "from": "tiny-llm", "parameters": {"num_predict": "many"}}, 400, "num_predict"),
        ({"model": "x", "modelfile": "SYSTEM hi\n"}, 400, "no FROM line"),
        ({"model": "x", "modelfile": "FROM a\nBOGUS x\n"}, 400, "(line 2)"),
    ],
)  # fmt: skip
async def test_what_create_cannot_do_is_a_clear_4xx(
    app: httpx.AsyncClient, body: dict[str, Any], status: int, says: str
) -> None:
    resp = await app.post("/api/create", json=body)
    assert resp.status_code == status
    assert says in resp.json()["error"]


async def test_derived_models_survive_a_restart_and_are_shared_by_every_worker(
    fake: FakeVLLM, folder: Path
) -> None:
    settings = Settings(vllm_url=await fake.url(), models_dir=str(folder))
    prepare(folder, {"by-hand": "FROM tiny-llm\nPARAMETER num_predict 3\n"})
    async for one in serve(settings):
        async for two in serve(settings):  # another worker (or replica) on the same folder
            tags = [m["model"] for m in (await two.get("/api/tags")).json()["models"]]
            assert "by-hand:latest" in tags
            await one.post(
                "/api/create", json={"model": "fresh", "from": "tiny-llm", "stream": False}
            )
            chat = {"model": "fresh", "messages": HI, "stream": False}
            assert (await two.post("/api/chat", json=chat)).status_code == 200  # at once
            await one.post(
                "/api/create", json={"model": "fresh", "from": "tiny-llm", "system": "v2"}
            )
            await two.post("/api/chat", json=chat)
            assert fake.last["messages"][0] == {"role": "system", "content": "v2"}
            await one.request("DELETE", "/api/delete", json={"model": "fresh"})
            assert (await two.post("/api/chat", json=chat)).status_code == 404
    async for again in serve(settings):  # a restart
        chat = {"model": "by-hand", "messages": HI, "stream": False}
        assert (await again.post("/api/chat", json=chat)).status_code == 200
        assert fake.last["max_tokens"] == 3


async def test_a_read_only_folder_refuses_changes_clearly(
    app: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    resp = await app.post("/api/create", json={**NOTES, "stream": False})
    assert resp.status_code == 403
    assert "read-only" in resp.json()["error"]


async def test_a_broken_modelfile_in_the_folder_is_skipped_not_fatal(
    fake: FakeVLLM, folder: Path
) -> None:
    prepare(folder, {"broken": "PARAMETER nope\n", "fine": "FROM tiny-llm\n"})
    async for c in serve(Settings(vllm_url=await fake.url(), models_dir=str(folder))):
        tags = [m["model"] for m in (await c.get("/api/tags")).json()["models"]]
        assert "fine:latest" in tags and "broken:latest" not in tags


async def test_a_draft_option_is_taken_and_not_applied(
    app: httpx.AsyncClient, fake: FakeVLLM
) -> None:
    """Ollama 0.30.0's ``draft_num_predict`` (speculative decoding's draft length): a request
    and a Modelfile may carry it, as Ollama takes it; vLLM drafts as it was started, so
    nothing of it reaches vLLM."""
    made = await app.post(
        "/api/create",
        json={"model": "drafty", "from": "tiny-llm", "parameters": {"draft_num_predict": 8}},
    )
    assert made.status_code == 200, made.text
    shown = (await app.post("/api/show", json={"model": "drafty"})).json()
    assert "draft_num_predict" in shown["parameters"]
    chat = {"model": "drafty", "messages": HI, "stream": False, "options": {"draft_num_predict": 2}}
    assert (await app.post("/api/chat", json=chat)).status_code == 200
    assert "draft" not in orjson.dumps(fake.requests[-1][1]).decode()
