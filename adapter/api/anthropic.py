"""Anthropic's Messages API, as Ollama serves it (Claude Code with ``ANTHROPIC_BASE_URL``).

vLLM serves ``/v1/messages`` and ``/v1/messages/count_tokens`` itself, so the body goes on as it
came, with the model name resolved; a model on the Vision Ollama goes there. Every error is
answered in Anthropic's shape, vLLM's too (some of its validation errors are OpenAI-shaped).
Anthropic's headers (``x-api-key``, ``anthropic-version``, ``anthropic-beta``) are accepted and
not sent on. As in Ollama, ``thinking`` asked of a model that cannot think is dropped, not
refused: coding agents ask it of every model.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from adapter.anthropic_api import SSE
from adapter.api.serving import forward_foreign
from adapter.errors import OllamaError
from adapter.ollama_api.models import ModelEntry

endpoints = APIRouter()


def _relax_thinking(body: dict[str, Any], entry: ModelEntry) -> None:
    if "thinking" not in entry.capabilities:
        body.pop("thinking", None)


def _checked(body: dict[str, Any], entry: ModelEntry) -> None:
    """Ollama's checks, with its messages, before the request goes on."""
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        raise OllamaError(400, "max_tokens is required and must be positive")
    if not body.get("messages"):
        raise OllamaError(400, "messages is required")
    _relax_thinking(body, entry)


@endpoints.post("/v1/messages")
async def messages(request: Request) -> Response:
    # vLLM numbers a message as its chat completions ("chatcmpl-..."); Anthropic's and
    # Ollama's ids start with "msg_", and clients may tell messages by it.
    return await forward_foreign(
        request,
        "/v1/messages",
        framing=SSE,
        adjust=_checked,
        own_errors=True,
        id_prefix=(b"chatcmpl-", b"msg_"),
    )


@endpoints.post("/v1/messages/count_tokens")
async def count_tokens(request: Request) -> Response:
    return await forward_foreign(
        request,
        "/v1/messages/count_tokens",
        framing=SSE,
        adjust=_relax_thinking,
        own_errors=True,
    )
