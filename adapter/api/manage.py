"""Ollama's model endpoints: list, running, show, pull, and the management calls vLLM owns."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from adapter.api.common import answer, parse, read_body, state_of, target
from adapter.api.streaming import JSON_TYPE, NDJSON_TYPE, cancel_on_disconnect, json_response
from adapter.errors import OllamaError
from adapter.jsonutil import dumps
from adapter.ollama_api.models import display_name, ps_entry, tag_entry
from adapter.ollama_api.requests import CopyRequest, ModelRequest, PullRequest, ShowRequest
from adapter.ollama_api.responses import progress_lines

router = APIRouter()

#: How VS Code's Copilot Chat starts its User-Agent.
COPILOT_AGENT = "GitHubCopilotChat/"

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
    found = await target(request, name, missing=f"model '{display_name(name)}' not found")
    started = state_of(request).started_at
    # Copilot shows general.basename; Ollama (0.18.3) echoes the name it was asked for.
    copilot = request.headers.get("user-agent", "").startswith(COPILOT_AGENT)
    basename = name if copilot else None
    show = found.backend.show(found.entry, raw, started, basename)
    return answer(await cancel_on_disconnect(request, show), request)


@router.post("/api/pull")
async def pull(request: Request) -> Response:
    """Services pull their model at start-up: a served model is 'pulled' at once."""
    _, data = await read_body(request)
    req = parse(PullRequest, data)
    name = req.target
    if not name:
        raise OllamaError(400, "invalid model name")
    await target(request, name, missing=f"pull model manifest: file does not exist ({MANAGED})")
    if req.stream is False:
        return json_response({"status": "success"})
    steps = ("pulling manifest", "verifying sha256 digest", "writing manifest", "success")
    return Response(progress_lines(*steps), media_type=NDJSON_TYPE)


@router.post("/api/push")
@router.post("/api/create")
async def not_managed_here(request: Request) -> Response:
    await read_body(request)
    raise OllamaError(501, f"{request.url.path.rsplit('/', 1)[-1]} is not supported: {MANAGED}")


@router.post("/api/copy")
async def copy(request: Request) -> Response:
    _, data = await read_body(request)
    req = parse(CopyRequest, data)
    await target(request, req.source, missing=f'model "{req.source}" not found')
    raise OllamaError(501, f"copy is not supported: {MANAGED}")


@router.delete("/api/delete")
async def delete(request: Request) -> Response:
    _, data = await read_body(request)
    req = parse(ModelRequest, data)
    name = req.target
    if not name:
        raise OllamaError(400, "model is required")
    await target(request, name)
    raise OllamaError(501, f"delete is not supported: {MANAGED}")


@router.head("/api/blobs/{digest}")
async def blob_exists(digest: str) -> Response:
    return Response(status_code=404)


@router.post("/api/blobs/{digest}")
async def blob_upload(digest: str) -> Response:
    raise OllamaError(501, f"blob upload is not supported: {MANAGED}")
