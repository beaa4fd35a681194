"""Ollama's model endpoints: list, running, show, pull; derived models (create, copy, delete);
and the management calls vLLM owns (push, blobs)."""

from __future__ import annotations

import dataclasses
import hashlib

from fastapi import APIRouter, Request
from starlette.responses import Response

from adapter.api.answers import NDJSON_TYPE, MadeJSON, json_response, respond
from adapter.api.inbound import parse, read_body, target
from adapter.errors import OllamaError
from adapter.jsonutil import dumps
from adapter.ollama_api import modelfile
from adapter.ollama_api.modelfile import Derived, unsupported
from adapter.ollama_api.models import display_name, normalize, ps_entry, tag_entry
from adapter.ollama_api.requests import (
    CopyRequest,
    CreateRequest,
    ModelRequest,
    PullRequest,
    ShowRequest,
)
from adapter.ollama_api.responses import progress_lines
from adapter.state import state_of

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
        state.tags_body = cached = (entries, body, MadeJSON.head_of(body))
    return MadeJSON(cached[1], cached[2])


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
    return await respond(request, show)


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
async def push(request: Request) -> Response:
    await read_body(request)
    raise OllamaError(501, f"push is not supported: {MANAGED}")


# --------------------------------------------------------------------------- derived models


def _name(raw: str) -> str:
    """A name for a new model, checked as Ollama checks one (its message)."""
    name = raw.strip()
    if not name or len(name) > 256 or any(c.isspace() or c < " " for c in name):
        raise OllamaError(400, "invalid model name")
    return name


async def _new_name(request: Request, name: str) -> None:
    """A derived model cannot take the name of a model the server serves (or an alias)."""
    existing = await state_of(request).router.find(name)
    if existing is not None and existing.entry.derived is None:
        raise OllamaError(
            400,
            f'"{name}" is a model this server serves ({MANAGED}); a derived model needs a '
            "name of its own",
        )


async def _over(request: Request, model: Derived) -> tuple[Derived, str]:
    """``model`` over what its ``FROM`` names, flattened onto a model vLLM serves; and the
    name its Modelfile's ``FROM`` gets."""
    parent = await target(request, model.base, missing=f"model '{model.base}' not found")
    if parent.backend.kind != "vllm":
        raise OllamaError(
            400,
            f'"{model.base}" is served by the Vision Ollama: create "{model.name}" there '
            "(its /api/create)",
        )
    if parent.entry.derived is not None:
        flat = model.over(parent.entry.derived)
        return flat, flat.base
    served = parent.entry.alias_of or parent.entry.name  # an alias: what it names
    return dataclasses.replace(model, base=served), served


def _derived_of(req: CreateRequest, name: str) -> Derived:
    for what in ("files", "adapters", "quantize"):
        if getattr(req, what):
            raise OllamaError(400, unsupported(what))
    if req.modelfile:
        return modelfile.parse(req.modelfile, name)
    if not req.from_:
        raise OllamaError(400, "neither 'from' or 'files' was specified")
    license = req.license if isinstance(req.license, list) else [req.license or ""]
    return Derived(
        name,
        req.from_,
        req.system,
        modelfile.options_of(req.parameters),
        modelfile.messages_of(req.messages),
        req.template,
        tuple(t for t in license if t),
    )


@router.post("/api/create")
async def create(request: Request) -> Response:
    """A derived model: a name over a served model with its own system prompt, default
    options and leading messages, kept as a Modelfile in ADAPTER_MODELS_DIR."""
    _, data = await read_body(request)
    req = parse(CreateRequest, data)
    name = _name(req.target)
    model = _derived_of(req, name)
    await _new_name(request, name)
    model, base = await _over(request, model)
    state = state_of(request)
    state.router.store.save(model, base)
    entries = await state.router.catalogue()
    made = next(e for e in entries if normalize(e.name) == normalize(name))
    if req.stream is False:
        return json_response({"status": "success"})
    layer = hashlib.sha256(modelfile.render(model, base).encode()).hexdigest()
    return Response(
        progress_lines(
            f"using existing layer sha256:{made.digest}",
            f"creating new layer sha256:{layer}",
            "writing manifest",
            "success",
        ),
        media_type=NDJSON_TYPE,
    )


@router.post("/api/copy")
async def copy(request: Request) -> Response:
    _, data = await read_body(request)
    req = parse(CopyRequest, data)
    source = await target(request, req.source, missing=f'model "{req.source}" not found')
    if not req.destination.strip():
        raise OllamaError(400, f'destination "{req.destination}" is invalid')
    name = _name(req.destination)
    await _new_name(request, name)
    derived = source.entry.derived
    model = derived.with_name(name) if derived else Derived(name, source.entry.name)
    model, base = await _over(request, model)
    state = state_of(request)
    state.router.store.save(model, base)
    await state.router.catalogue()
    return Response(status_code=200)


@router.delete("/api/delete")
async def delete(request: Request) -> Response:
    _, data = await read_body(request)
    req = parse(ModelRequest, data)
    name = req.target
    if not name:
        raise OllamaError(400, "model is required")
    found = await target(request, name)
    state = state_of(request)
    if found.entry.derived is None:
        what = "an alias (MODEL_ALIASES)" if found.entry.alias_of else "a model vLLM serves"
        if found.backend.kind != "vllm":
            what = "a model of the Vision Ollama (delete it there)"
        raise OllamaError(
            403, f"model '{name}' is {what} and keeps serving; only derived models are deleted here"
        )
    state.router.store.delete(found.entry.derived.name)
    await state.router.catalogue()
    return Response(status_code=200)


@router.head("/api/blobs/{digest}")
async def blob_exists(digest: str) -> Response:
    return Response(status_code=404)


@router.post("/api/blobs/{digest}")
async def blob_upload(digest: str) -> Response:
    raise OllamaError(501, f"blob upload is not supported: {MANAGED}")
