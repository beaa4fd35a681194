"""What a vLLM serves: its model list as Ollama entries, and what each model can do.

vLLM's ``/v1/models`` says only names and context lengths; the rest is asked of vLLM once per
model, when it first appears (``ADAPTER_PROBE_CAPABILITIES``), by requests whose answers tell
(``Catalogue._capabilities`` says which). The bodies of those probes are here too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from adapter.backends.upstream import Upstream
from adapter.backends.vllm.to_openai import image_part
from adapter.errors import OllamaError
from adapter.ollama_api.models import ModelEntry, display_name, ordered_capabilities

log = logging.getLogger("adapter.vllm")

#: How long asking vLLM what its new models can do may take before the list is served anyway.
DISCOVERY_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Discovered:
    """What vLLM's answers showed a model can do."""

    capabilities: frozenset[str]
    embedding_length: int | None = None


class Catalogue:
    """One vLLM's models and their capabilities (``fetch`` answers the entries)."""

    def __init__(
        self,
        name: str,
        upstream: Upstream,
        *,
        probe: bool,
        status_error: Callable[[int, bytes, str | None], OllamaError],
    ) -> None:
        """``name``: the backend's, on every entry; ``status_error``: vLLM's non-200 answer
        as Ollama's error (counted and logged by the backend)."""
        self.name = name
        self.upstream = upstream
        self._probe = probe
        self._status_error = status_error
        self._discovered: dict[str, Discovered] = {}

    async def fetch(self) -> list[ModelEntry]:
        """vLLM's ``/v1/models`` as entries, with what each model can do (asked once per
        model, when it first appears)."""
        status, content = await self.upstream.fetch("GET", "/v1/models")
        if status != 200:
            raise self._status_error(status, content, None)
        data = orjson.loads(content).get("data") or []
        cards = [m for m in data if isinstance(m, dict) and m.get("id")]
        await self._discover_new(cards)
        return [self._entry(card) for card in cards]

    async def _discover_new(self, cards: list[dict[str, Any]]) -> None:
        """Ask what each model not seen before can do (the list changed)."""
        new = [str(c["id"]) for c in cards if str(c["id"]) not in self._discovered]
        if not new:
            return
        try:
            async with asyncio.timeout(DISCOVERY_SECONDS):
                found = await asyncio.gather(*(self._capabilities(m) for m in new))
        except (TimeoutError, OllamaError) as exc:
            log.warning("vLLM at %s: capabilities not known yet (%r)", self.upstream.url, exc)
            return
        self._discovered.update(zip(new, found, strict=True))

    def _entry(self, card: Mapping[str, Any]) -> ModelEntry:
        served = str(card["id"])
        found = self._discovered.get(served, Discovered(frozenset({"completion"})))
        return ModelEntry(
            name=display_name(served),
            served=served,
            backend=self.name,
            max_model_len=card.get("max_model_len"),
            root=card.get("root"),
            capabilities=ordered_capabilities(found.capabilities),
            embedding_length=found.embedding_length,
        )

    async def _capabilities(self, model: str) -> Discovered:
        """What ``model`` can do, asked of vLLM, once per model (``ADAPTER_PROBE_CAPABILITIES``).

        vLLM says none of it in its model list, but its answers tell: a pooling model answers
        ``/v1/embeddings`` (and its vector's length is the embedding length); tools need a chat
        template that renders them (``/tokenize`` with and without a tool differs) and a server
        with a tool parser (it refuses ``tool_choice: auto`` otherwise); a text-only model
        refuses an image (400 "is not a multimodal model"); a model without fill-in-the-middle
        refuses ``suffix``; and a chat template that toggles thinking renders the same chat
        differently with ``enable_thinking`` true and false. Each generating probe asks for one
        token; all run at once. A probe that fails counts as "no"; one that cannot finish in
        ``DISCOVERY_SECONDS`` leaves the model to be asked again at the next list.
        """
        if not self._probe:
            return Discovered(frozenset({"completion"}))
        status, content = await self.upstream.fetch(
            "POST", "/v1/embeddings", orjson.dumps({"model": model, "input": "probe"})
        )
        if status == 200:
            try:
                data = orjson.loads(content).get("data") or [{}]
                return Discovered(frozenset({"embedding"}), len(data[0].get("embedding") or []))
            except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
                # A proxy in front of vLLM answering 200 with no JSON: not an embedding model.
                log.warning(
                    "vLLM at %s: /v1/embeddings answered what is not its JSON", self.upstream.url
                )
        checks = await asyncio.gather(
            self._takes_tools(model),
            self._accepts("/v1/chat/completions", vision_probe(model)),
            self._accepts("/v1/completions", insert_probe(model)),
            self._renders_differently(thinking_probe(model, True), thinking_probe(model, False)),
        )
        found = {"completion"}
        for name, ok in zip(("tools", "vision", "insert", "thinking"), checks, strict=True):
            if ok:
                found.add(name)
        log.info("vLLM at %s, %s: %s", self.upstream.url, model, ", ".join(sorted(found)))
        return Discovered(frozenset(found))

    async def _accepts(self, path: str, body: dict[str, Any]) -> bool:
        status, _ = await self.upstream.fetch("POST", path, orjson.dumps(body))
        return status == 200

    async def _takes_tools(self, model: str) -> bool:
        """Tools, as Ollama decides them: the chat template renders them (the prompt changes
        when a tool is added), and the server can turn the answer into calls (a tool parser:
        it accepts ``tool_choice: auto``)."""
        renders = await self._renders_differently(
            tools_template_probe(model, True), tools_template_probe(model, False)
        )
        return renders and await self._accepts("/v1/chat/completions", tools_probe(model))

    async def _renders_differently(self, first: dict[str, Any], second: dict[str, Any]) -> bool:
        """Whether vLLM's ``/tokenize`` gives two chats different tokens; an answer that is not
        a 200 or cannot be read counts as "no"."""
        rendered = []
        for body in (first, second):
            status, content = await self.upstream.fetch("POST", "/tokenize", orjson.dumps(body))
            if status != 200:
                return False
            try:
                rendered.append(orjson.loads(content)["tokens"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.warning(
                    "vLLM at %s: /tokenize answered what is not its JSON", self.upstream.url
                )
                return False
        return bool(rendered[0] != rendered[1])


# --------------------------------------------------------------------------- probe bodies

#: A 1x1 PNG: what a vision preflight sends.
PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
_PROBE_TOOL = {"type": "function", "function": {"name": "probe", "parameters": {"type": "object"}}}


def tools_probe(model: str) -> dict[str, Any]:
    """A one-token chat that only a server with a tool parser accepts."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": "probe"}],
        "tools": [_PROBE_TOOL],
        "tool_choice": "auto",
        "max_tokens": 1,
    }


def vision_probe(model: str) -> dict[str, Any]:
    """A one-token chat with a 1x1 image, which a text-only model refuses."""
    content = [image_part(PIXEL_PNG), {"type": "text", "text": "probe"}]
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 1}


def insert_probe(model: str) -> dict[str, Any]:
    """A one-token completion with a suffix (fill-in-the-middle)."""
    return {"model": model, "prompt": "probe", "suffix": "probe", "max_tokens": 1}


def tools_template_probe(model: str, with_tools: bool) -> dict[str, Any]:
    """The same chat, tokenized with and without a tool: a chat template that ignores tools
    (as SmolLM2's does) renders both alike, and the model never sees tools it is sent."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "probe"}],
        "add_generation_prompt": True,
    }
    if with_tools:
        body["tools"] = [_PROBE_TOOL]
    return body


def thinking_probe(model: str, enable: bool) -> dict[str, Any]:
    """The same chat, tokenized with thinking switched on or off."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": "probe"}],
        "add_generation_prompt": True,
        "chat_template_kwargs": {"enable_thinking": enable},
    }
