"""Ollama's generation endpoints and the service endpoints (root, version, health, metrics)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import PlainTextResponse, Response

from adapter.api.answers import json_response
from adapter.api.serving import served
from adapter.ollama_api.requests import ChatRequest, GenerateRequest
from adapter.services import services_of

endpoints = APIRouter()


@endpoints.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def root() -> Response:
    return PlainTextResponse("Ollama is running")


@endpoints.api_route("/api/version", methods=["GET", "HEAD"])
async def version(request: Request) -> Response:
    return json_response({"version": services_of(request).settings.ollama_version})


@endpoints.post("/api/chat")
async def chat(request: Request) -> Response:
    return await served(request, ChatRequest, lambda backend: backend.chat)


@endpoints.post("/api/generate")
async def generate(request: Request) -> Response:
    return await served(request, GenerateRequest, lambda backend: backend.generate)


@endpoints.get("/health")
async def health(request: Request) -> Response:
    """Liveness of the adapter and reachability of its backends: 200 when every essential
    backend (each vLLM) answers; each backend's check under its kind (a list for several)."""
    services = services_of(request)
    checks = [(b, await b.health()) for b in services.backends]
    essential = [h for b, h in checks if b.essential]
    ok = all(h.get("reachable") for h in essential)
    # Serving, with part of it out (a router with a replica down): still 200, said in words.
    whole = ok and all(h.get("status", 200) == 200 for h in essential)
    body: dict[str, Any] = {
        "status": "ok" if whole else "degraded",
        "adapter": {
            "version": services.version,
            "ollama_api_version": services.settings.ollama_version,
        },
    }
    kinds: dict[str, list[dict[str, Any]]] = {}
    for backend, h in checks:
        kinds.setdefault(backend.kind, []).append(h)
    body.update((kind, found[0] if len(found) == 1 else found) for kind, found in kinds.items())
    return json_response(body, 200 if ok else 503)


@endpoints.api_route("/ready", methods=["GET", "HEAD"])
async def ready(request: Request) -> Response:
    """Readiness (Kubernetes, compose): 200 once some essential backend (a vLLM) answers and
    serves a model, 503 while none can. ``GET /`` is liveness; ``/health`` is the full picture
    for people."""
    checks = [await b.health() for b in services_of(request).backends if b.essential]
    serving = [h for h in checks if h.get("reachable") and h.get("models")]
    body = {"status": "ready" if serving else "not ready", "vllm": checks}
    return json_response(body, 200 if serving else 503)


@endpoints.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(services_of(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
