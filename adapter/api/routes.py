"""Ollama's generation endpoints and the service endpoints (root, version, health, metrics)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import PlainTextResponse, Response

from adapter.api.common import answer, parse, passthrough, read_body, state_of
from adapter.api.schemas import ChatRequest, GenerateRequest
from adapter.api.streaming import cancel_on_disconnect, json_response
from adapter.backends.base import ModelEntry
from adapter.backends.vllm.translate import keep_alive_seconds, load_response
from adapter.errors import OllamaError

router = APIRouter()


async def _entry(request: Request, name: str) -> ModelEntry:
    entry = await state_of(request).router.resolve(name)
    if entry is None:
        raise OllamaError(404, f"model '{name}' not found")
    return entry


def _require(entry: ModelEntry, name: str, capability: str, what: str) -> None:
    if capability not in entry.capabilities:
        raise OllamaError(400, f'"{name}" does not support {what}')


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def root() -> Response:
    return PlainTextResponse("Ollama is running")


@router.api_route("/api/version", methods=["GET", "HEAD"])
async def version(request: Request) -> Response:
    return json_response({"version": state_of(request).settings.ollama_version})


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    raw, data = await read_body(request)
    req = parse(ChatRequest, data)
    if not req.model:
        raise OllamaError(400, "model is required")
    entry = await _entry(request, req.model)
    backend = state_of(request).vllm_for(entry)
    stream = req.stream is not False
    if backend is None:
        return await passthrough(request, entry, "/api/chat", raw, stream=stream)
    unload = keep_alive_seconds(req.keep_alive) == 0
    if not req.messages:
        return json_response(load_response(req.model, chat=True, unload=unload))
    _require(entry, req.model, "completion", "chat")
    result = await cancel_on_disconnect(request, backend.chat(req, entry, stream=stream))
    return answer(result, request)


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    raw, data = await read_body(request)
    req = parse(GenerateRequest, data)
    if not req.model:
        raise OllamaError(404, "model '' not found")
    entry = await _entry(request, req.model)
    backend = state_of(request).vllm_for(entry)
    stream = req.stream is not False
    if backend is None:
        return await passthrough(request, entry, "/api/generate", raw, stream=stream)
    unload = keep_alive_seconds(req.keep_alive) == 0
    if not req.prompt and not req.suffix and not req.images:
        return json_response(load_response(req.model, chat=False, unload=unload))
    _require(entry, req.model, "completion", "generate")
    result = await cancel_on_disconnect(request, backend.generate(req, entry, stream=stream))
    return answer(result, request)


@router.get("/health")
async def health(request: Request) -> Response:
    """Liveness of the adapter and reachability of its backends: 200 when every vLLM answers."""
    state = state_of(request)
    upstreams = [await b.health() for b in state.vllm]
    ok = all(u.get("reachable") for u in upstreams)
    body = {
        "status": "ok" if ok else "degraded",
        "adapter": {"version": state.version, "ollama_api_version": state.settings.ollama_version},
        "vllm": upstreams[0] if len(upstreams) == 1 else upstreams,
    }
    if state.ollama is not None:
        try:
            models = await state.ollama.models(refresh=True)
            body["ollama"] = {
                "url": state.ollama.url,
                "reachable": True,
                "models": [m.get("model") for m in models],
            }
        except OllamaError as exc:
            body["ollama"] = {"url": state.ollama.url, "reachable": False, "error": exc.message}
    return json_response(body, 200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(state_of(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
