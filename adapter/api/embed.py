"""Ollama's embedding endpoints, answered by the backend that serves the model."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from adapter.api.serving import served
from adapter.ollama_api.requests import EmbeddingsRequest, EmbedRequest

endpoints = APIRouter()


@endpoints.post("/api/embed")
async def embed(request: Request) -> Response:
    return await served(request, EmbedRequest, lambda backend: backend.embed)


@endpoints.post("/api/embeddings")
async def embeddings(request: Request) -> Response:
    """The legacy endpoint: one prompt, one vector, not normalised."""
    return await served(request, EmbeddingsRequest, lambda backend: backend.embeddings)
