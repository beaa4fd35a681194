"""Ollama's model endpoints: list, running, show, and the management calls vLLM owns."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from adapter.api.catalogue import ps_entry, show, tag_entry
from adapter.api.common import parse, passthrough, read_body, state_of
from adapter.api.schemas import CopyRequest, ModelRequest, PullRequest, ShowRequest
from adapter.api.streaming import JSON_TYPE, json_response
from adapter.backends.base import display_name
from adapter.backends.vllm.translate import dumps
from adapter.errors import OllamaError

router = APIRouter()

MANAGED = (
    "the model set of this server is managed by vLLM's configuration "
    "(--model / --served-model-name) and the adapter's MODEL_ALIASES"
)


@router.api_route("/api/tags", methods=["GET", "HEAD"])
async def tags(request: Request) -> Response:
    state = state_of(request)
    entries = await state.router.catalogue()
    cached = state.tags_body
    if cached is None or cached[0] is not entries:
        body = dumps({"models": [tag_entry(e, state.started_at) for e in entries]})
        state.tags_body = cached = (entries, body)
    return Response(cached[1], media_type=JSON_TYPE)


@router.get("/api/ps")
async def ps(request: Request) -> Response:
    entries = await state_of(request).router.catalogue()
    return json_response({"models": [ps_entry(e) for e in entries]})


@router.post("/api/show")
async def show_model(request: Request) -> Response:
    raw, data = await read_body(request)
    req = parse(ShowRequest, data)
    name = req.target
    if not name:
        raise OllamaError(400, "model is required")
    state = state_of(request)
    entry = await state.router.resolve(name)
    if entry is None:
        raise OllamaError(404, f"model '{display_name(name)}' not found")
    backend = state.vllm_for(entry)
    if backend is None:
        return await passthrough(request, entry, "/api/show", raw, stream=False)
    return json_response(show(entry, state.started_at, backend_url=backend.url))


@router.post("/api/pull")
async def pull(request: Request) -> Response:
    """Services pull their model at start-up: a served model is 'pulled' at once."""
    _, data = await read_body(request)
    req = parse(PullRequest, data)
    name = req.target
    if not name:
        raise OllamaError(400, "invalid model name")
    entry = await state_of(request).router.resolve(name)
    if entry is None:
        raise OllamaError(404, f"pull model manifest: file does not exist ({MANAGED})")
    if req.stream is False:
        return json_response({"status": "success"})
    steps = [
        {"status": "pulling manifest"},
        {"status": "verifying sha256 digest"},
        {"status": "writing manifest"},
        {"status": "success"},
    ]
    body = b"".join(orjson.dumps(s) + b"\n" for s in steps)
    return Response(body, media_type="application/x-ndjson")


@router.post("/api/push")
@router.post("/api/create")
async def not_managed_here(request: Request) -> Response:
    await read_body(request)
    raise OllamaError(501, f"{request.url.path.rsplit('/', 1)[-1]} is not supported: {MANAGED}")


@router.post("/api/copy")
async def copy(request: Request) -> Response:
    _, data = await read_body(request)
    req = parse(CopyRequest, data)
    if await state_of(request).router.resolve(req.source) is None:
        raise OllamaError(404, f'model "{req.source}" not found')
    raise OllamaError(501, f"copy is not supported: {MANAGED}")


@router.delete("/api/delete")
async def delete(request: Request) -> Response:
    _, data = await read_body(request)
    req = parse(ModelRequest, data)
    name = req.target
    if not name:
        raise OllamaError(400, "model is required")
    if await state_of(request).router.resolve(name) is None:
        raise OllamaError(404, f"model '{name}' not found")
    raise OllamaError(501, f"delete is not supported: {MANAGED}")


@router.head("/api/blobs/{digest}")
async def blob_exists(digest: str) -> Response:
    return Response(status_code=404)


@router.post("/api/blobs/{digest}")
async def blob_upload(digest: str) -> Response:
    raise OllamaError(501, f"blob upload is not supported: {MANAGED}")
