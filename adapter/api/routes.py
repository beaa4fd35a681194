"""Ollama's endpoints: parse the request, ask the router, answer JSON or NDJSON."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import PlainTextResponse, Response

from adapter.api.catalogue import tag_entry
from adapter.api.schemas import ChatRequest, GenerateRequest
from adapter.api.streaming import NDJSONStream, cancel_on_disconnect, json_response
from adapter.backends.base import ModelEntry
from adapter.backends.vllm.translate import keep_alive_seconds, load_response
from adapter.errors import OllamaError
from adapter.state import AppState

log = logging.getLogger("adapter.api")
M = TypeVar("M", bound=BaseModel)

router = APIRouter()


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.adapter
    return state


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object, whatever the Content-Type (``curl -d`` sends a form type)."""
    body = await request.body()
    if not body.strip():
        raise OllamaError(400, "missing request body")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OllamaError(400, f"invalid JSON in request body: {exc}") from None
    if not isinstance(data, dict):
        raise OllamaError(400, "request body must be a JSON object")
    return data


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate a request object; the first problem becomes Ollama's 400 message."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise OllamaError(400, f"invalid value for {where}: {err['msg']}") from None


def _unload(keep_alive: float | str | None) -> bool:
    return keep_alive_seconds(keep_alive) == 0


async def _entry(request: Request, name: str) -> ModelEntry:
    entry = await state_of(request).router.resolve(name)
    if entry is None:
        raise OllamaError(404, f"model '{name}' not found")
    return entry


def _answer(result: dict[str, Any] | Any, request: Request) -> Response:
    if isinstance(result, dict):
        return json_response(result)
    return NDJSONStream(result, on_disconnect=state_of(request).metrics.disconnects.inc)


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def root() -> Response:
    return PlainTextResponse("Ollama is running")


@router.api_route("/api/version", methods=["GET", "HEAD"])
async def version(request: Request) -> Response:
    return json_response({"version": state_of(request).settings.ollama_version})


@router.api_route("/api/tags", methods=["GET", "HEAD"])
async def tags(request: Request) -> Response:
    state = state_of(request)
    entries = await state.router.catalogue()
    return json_response({"models": [tag_entry(e, state.started_at) for e in entries]})


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    req = parse(ChatRequest, await read_json(request))
    if not req.model:
        raise OllamaError(400, "model is required")
    entry = await _entry(request, req.model)
    if not req.messages:
        return json_response(load_response(req.model, chat=True, unload=_unload(req.keep_alive)))
    keep_alive_seconds(req.keep_alive)
    backend = state_of(request).vllm
    stream = req.stream is not False
    result = await cancel_on_disconnect(request, backend.chat(req, entry, stream=stream))
    return _answer(result, request)


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    req = parse(GenerateRequest, await read_json(request))
    if not req.model:
        raise OllamaError(404, "model '' not found")
    entry = await _entry(request, req.model)
    if not req.prompt and not req.suffix and not req.images:
        return json_response(load_response(req.model, chat=False, unload=_unload(req.keep_alive)))
    keep_alive_seconds(req.keep_alive)
    backend = state_of(request).vllm
    stream = req.stream is not False
    result = await cancel_on_disconnect(request, backend.generate(req, entry, stream=stream))
    return _answer(result, request)


@router.get("/health")
async def health(request: Request) -> Response:
    """Liveness of the adapter and reachability of vLLM: 200 when vLLM answers, else 503."""
    state = state_of(request)
    upstream = await state.vllm.health()
    ok = bool(upstream.get("reachable"))
    body = {
        "status": "ok" if ok else "degraded",
        "adapter": {"version": state.version, "ollama_api_version": state.settings.ollama_version},
        "vllm": upstream,
    }
    return json_response(body, 200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(
        generate_latest(state_of(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
