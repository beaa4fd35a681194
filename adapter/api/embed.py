"""Ollama's embedding endpoints, answered by the backend that serves the model."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from adapter.api.answers import respond
from adapter.api.inbound import parse, read_body, target
from adapter.errors import OllamaError
from adapter.ollama_api.requests import EmbeddingsRequest, EmbedRequest

router = APIRouter()


def _missing(name: str) -> str:
    return f'model "{name}" not found, try pulling it first'


@router.post("/api/embed")
async def embed(request: Request) -> Response:
    raw, data = await read_body(request)
    req = parse(EmbedRequest, data)
    if not req.model:
        raise OllamaError(404, "model '' not found")
    found = await target(request, req.model, missing=_missing(req.model))
    return await respond(request, found.backend.embed(req, found.entry, raw))


@router.post("/api/embeddings")
async def embeddings(request: Request) -> Response:
    """The legacy endpoint: one prompt, one vector, not normalised."""
    raw, data = await read_body(request)
    req = parse(EmbeddingsRequest, data)
    if not req.model:
        raise OllamaError(400, "model is required")
    found = await target(request, req.model, missing=_missing(req.model))
    return await respond(request, found.backend.embeddings(req, found.entry, raw))
