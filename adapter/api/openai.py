"""OpenAI-compatible endpoints, as Ollama serves them: forwarded with model names rewritten.

Chat and text completions, embeddings, the Responses API and the model list; vLLM serves all
of them itself.

Clients such as Copilot list models through ``/api/tags`` and then chat through ``/v1``
with those names, so ``/v1`` accepts every name ``/api/tags`` shows. Bodies and streams
are otherwise passed through untouched; errors keep OpenAI's shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from adapter.api.answers import json_response
from adapter.api.inbound import target
from adapter.api.serving import forward_foreign
from adapter.ollama_api.modelfile import openai_defaults
from adapter.ollama_api.models import ModelEntry
from adapter.ollama_api.options import OPENAI_SAMPLING
from adapter.openai_api import SSE, responses_tools
from adapter.services import services_of

endpoints = APIRouter()


def _card(entry: ModelEntry, created: int) -> dict[str, object]:
    return {"id": entry.name, "object": "model", "created": created, "owned_by": entry.backend}


async def _forward(request: Request, path: str, *, generation: bool = False) -> Response:
    """Forwarded with the model name resolved; on the generation routes a derived model's
    settings applied (as Ollama applies a Modelfile there), and Ollama's sampling defaults for
    what neither sets (unless ADAPTER_SAMPLING_DEFAULTS=model)."""
    if not generation:
        return await forward_foreign(request, path, framing=SSE)
    ollama = services_of(request).settings.sampling_defaults == "ollama"
    sampling = OPENAI_SAMPLING if ollama else None

    def adjust(body: dict[str, Any], entry: ModelEntry) -> None:
        openai_defaults(body, entry.derived, max_model_len=entry.max_model_len, sampling=sampling)

    return await forward_foreign(request, path, framing=SSE, adjust=adjust)


@endpoints.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    return await _forward(request, "/v1/chat/completions", generation=True)


@endpoints.post("/v1/completions")
async def completions(request: Request) -> Response:
    return await _forward(request, "/v1/completions", generation=True)


def _responses_tools(body: dict[str, Any], entry: ModelEntry) -> None:
    tools = body.get("tools")
    if isinstance(tools, list):
        body["tools"] = responses_tools(tools)


@endpoints.post("/v1/responses")
async def responses(request: Request) -> Response:
    """OpenAI's Responses API (Codex with ``wire_api = "responses"``, ``responses.create``):
    namespaced tools expanded and the cloud's web search left out, as Ollama does."""
    return await forward_foreign(request, "/v1/responses", framing=SSE, adjust=_responses_tools)


@endpoints.post("/v1/embeddings")
async def embeddings(request: Request) -> Response:
    return await _forward(request, "/v1/embeddings")


@endpoints.get("/v1/models")
async def models(request: Request) -> Response:
    services = services_of(request)
    created = int(services.started_at.timestamp())
    entries = await services.router.catalogue()
    return json_response({"object": "list", "data": [_card(e, created) for e in entries]})


@endpoints.get("/v1/models/{model:path}")
async def model(request: Request, model: str) -> Response:
    found = await target(request, model)
    return json_response(_card(found.entry, int(services_of(request).started_at.timestamp())))
