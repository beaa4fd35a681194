"""Ollama's embedding endpoints, served by a vLLM pooling model (or passed to Ollama)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from adapter.api.common import parse, passthrough, read_body, state_of
from adapter.api.schemas import EmbeddingsRequest, EmbedRequest
from adapter.api.streaming import cancel_on_disconnect, json_response
from adapter.backends.base import ModelEntry
from adapter.backends.vllm import VLLMBackend
from adapter.backends.vllm import translate as t
from adapter.errors import OllamaError

router = APIRouter()


async def _embedder(request: Request, name: str) -> tuple[ModelEntry, VLLMBackend | None]:
    state = state_of(request)
    entry = await state.router.resolve(name)
    if entry is None:
        raise OllamaError(404, f'model "{name}" not found, try pulling it first')
    backend = state.vllm_for(entry)
    if backend is not None and "embedding" not in entry.capabilities:
        raise OllamaError(400, f'"{name}" does not support embeddings')
    return entry, backend


async def _vectors(
    request: Request, backend: VLLMBackend, entry: ModelEntry, inputs: list[str], truncate: bool
) -> tuple[list[list[float]], int]:
    body = t.embed_body(entry.served, inputs, truncate=truncate)
    resp = await cancel_on_disconnect(
        request, backend.post("/v1/embeddings", body, model=entry.name)
    )
    usage = resp.get("usage") or {}
    return t.embeddings_out(resp), int(usage.get("prompt_tokens") or 0)


@router.post("/api/embed")
async def embed(request: Request) -> Response:
    start = time.perf_counter_ns()
    raw, data = await read_body(request)
    req = parse(EmbedRequest, data)
    if not req.model:
        raise OllamaError(404, "model '' not found")
    entry, backend = await _embedder(request, req.model)
    if backend is None:
        return await passthrough(request, entry, "/api/embed", raw, stream=False)
    inputs = [req.input] if isinstance(req.input, str) else list(req.input or [])
    inputs = [i for i in inputs if i != ""] if len(inputs) == 1 else inputs
    if not inputs:
        return json_response({"model": req.model, "embeddings": []})
    if req.dimensions is not None and req.dimensions < 1:
        raise OllamaError(400, "dimensions must be a positive integer")
    try:
        vectors, tokens = await _vectors(request, backend, entry, inputs, req.truncate is not False)
    except OllamaError as exc:
        if exc.status == 400 and "context length" in exc.message:
            raise OllamaError(400, "the input length exceeds the context length") from None
        raise
    total = time.perf_counter_ns() - start
    return json_response(
        {
            "model": req.model,
            "embeddings": [t.normalized(v, req.dimensions) for v in vectors],
            "total_duration": total,
            "load_duration": 1,
            "prompt_eval_count": tokens,
        }
    )


@router.post("/api/embeddings")
async def embeddings(request: Request) -> Response:
    """The legacy endpoint: one prompt, one vector, not normalised."""
    raw, data = await read_body(request)
    req = parse(EmbeddingsRequest, data)
    if not req.model:
        raise OllamaError(400, "model is required")
    entry, backend = await _embedder(request, req.model)
    if backend is None:
        return await passthrough(request, entry, "/api/embeddings", raw, stream=False)
    if not req.prompt:
        return json_response({"embedding": []})
    vectors, _ = await _vectors(request, backend, entry, [req.prompt], True)
    return json_response({"embedding": vectors[0] if vectors else []})
