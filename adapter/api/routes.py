"""Ollama's generation endpoints and the service endpoints (root, version, health, metrics)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import PlainTextResponse, Response

from adapter.api.answers import json_response, respond
from adapter.api.inbound import parse, read_body, target
from adapter.errors import OllamaError
from adapter.ollama_api.requests import ChatRequest, GenerateRequest
from adapter.state import state_of

router = APIRouter()


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
    found = await target(request, req.model)
    return await respond(request, found.backend.chat(req, found.entry, raw))


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    raw, data = await read_body(request)
    req = parse(GenerateRequest, data)
    if not req.model:
        raise OllamaError(404, "model '' not found")
    found = await target(request, req.model)
    return await respond(request, found.backend.generate(req, found.entry, raw))


@router.get("/health")
async def health(request: Request) -> Response:
    """Liveness of the adapter and reachability of its backends: 200 when every vLLM answers."""
    state = state_of(request)
    checks = [(b.kind, await b.health()) for b in state.backends]
    vllm = [h for kind, h in checks if kind == "vllm"]
    ok = all(h.get("reachable") for h in vllm)
    # Serving, with part of it out (a router with a replica down): still 200, said in words.
    whole = ok and all(h.get("status") == 200 for h in vllm)
    body = {
        "status": "ok" if whole else "degraded",
        "adapter": {"version": state.version, "ollama_api_version": state.settings.ollama_version},
        "vllm": vllm[0] if len(vllm) == 1 else vllm,
    }
    for kind, h in checks:
        if kind == "ollama":
            body["ollama"] = h
    return json_response(body, 200 if ok else 503)


@router.api_route("/ready", methods=["GET", "HEAD"])
async def ready(request: Request) -> Response:
    """Readiness (Kubernetes, compose): 200 once some vLLM answers and serves a model, 503
    while none can. ``GET /`` is liveness; ``/health`` is the full picture for people."""
    state = state_of(request)
    checks = [await b.health() for b in state.backends if b.kind == "vllm"]
    serving = [h for h in checks if h.get("reachable") and h.get("models")]
    body = {"status": "ready" if serving else "not ready", "vllm": checks}
    return json_response(body, 200 if serving else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(state_of(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
