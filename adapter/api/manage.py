"""Ollama's model endpoints: list, running, show, pull; derived models (create, copy, delete);
and the management calls vLLM owns (push, blobs)."""

from __future__ import annotations

import dataclasses
import hashlib

from fastapi import APIRouter, Request
from starlette.responses import Response

from adapter.api.answers import NDJSON_TYPE, MadeJSON, json_response, respond
from adapter.api.inbound import asked, parse, read_body, target
from adapter.errors import OllamaError
from adapter.jsonutil import dumps
from adapter.ollama_api import modelfile
from adapter.ollama_api.modelfile import Derived, unsupported
from adapter.ollama_api.models import ModelEntry, normalize, ps_entry, recommendation, tag_entry
from adapter.ollama_api.requests import (
    CopyRequest,
    CreateRequest,
    ModelRequest,
    PullRequest,
    ShowRequest,
)
from adapter.ollama_api.responses import progress_lines
from adapter.services import services_of

endpoints = APIRouter()

#: How VS Code's Copilot Chat starts its User-Agent.
COPILOT_AGENT = "GitHubCopilotChat/"

MANAGED = (
    "the model set of this server is managed by vLLM's configuration "
    "(--model / --served-model-name) and the adapter's MODEL_ALIASES"
)


#: ``/api/pull`` of a model nobody serves.
NOT_PULLED = f"pull model manifest: file does not exist ({MANAGED})"


@endpoints.api_route("/api/tags", methods=["GET", "HEAD"])
async def tags(request: Request) -> Response:
    services = services_of(request)
    entries = await services.router.catalogue()
    cached = services.tags_body
    if cached is None or cached[0] is not entries:
        body = dumps({"models": [tag_entry(e, services.started_at) for e in entries]})
        services.tags_body = cached = (entries, body, MadeJSON.head_of(body))
    return MadeJSON(cached[1], cached[2])


@endpoints.get("/api/experimental/model-recommendations")
async def model_recommendations(request: Request) -> Response:
    """Ollama's (0.22.1) list of models to offer a person (VS Code's Ollama extension asks).
    Ollama recommends library and cloud models to pull; here only what is served can answer,
    so the served models that generate are the recommendations, with their context length."""
    entries = await services_of(request).router.catalogue()
    return json_response({"recommendations": [recommendation(e) for e in entries if e.generates]})


@endpoints.get("/api/ps")
async def ps(request: Request) -> Response:
    entries = await services_of(request).router.catalogue()
    return json_response({"models": [ps_entry(e) for e in entries]})


@endpoints.post("/api/show")
async def show_model(request: Request) -> Response:
    a = await asked(request, ShowRequest)
    started = services_of(request).started_at
    # Copilot shows general.basename; Ollama (0.18.3) echoes the name it was asked for.
    copilot = request.headers.get("user-agent", "").startswith(COPILOT_AGENT)
    basename = a.req.target if copilot else None
    return await respond(request, a.backend.show(a.entry, a.raw, started, basename))


@endpoints.post("/api/pull")
async def pull(request: Request) -> Response:
    """Services pull their model at start-up: a served model is 'pulled' at once."""
    a = await asked(request, PullRequest, missing=NOT_PULLED)
    if a.req.stream is False:
        return json_response({"status": "success"})
    steps = ("pulling manifest", "verifying sha256 digest", "writing manifest", "success")
    return Response(progress_lines(*steps), media_type=NDJSON_TYPE)


@endpoints.post("/api/push")
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
    existing = await services_of(request).router.find(name)
    if existing is not None and existing.entry.derived is None:
        raise OllamaError(
            400,
            f'"{name}" is a model this server serves ({MANAGED}); a derived model needs a '
            "name of its own",
        )


async def _over(request: Request, model: Derived) -> tuple[Derived, str]:
    """``model`` over what its ``FROM`` names, flattened onto a model vLLM serves; and the
    name its Modelfile's ``FROM`` gets."""
    parent = await target(request, model.base)
    if not parent.backend.derives:
        raise OllamaError(
            400,
            f'"{model.base}" is served by {parent.backend.title}: create "{model.name}" there '
            "(its /api/create)",
        )
    if parent.entry.derived is not None:
        flat = model.over(parent.entry.derived)
        return flat, flat.base
    served = parent.entry.alias_of or parent.entry.name  # an alias: what it names
    return dataclasses.replace(model, base=served), served


async def _made(request: Request, model: Derived) -> tuple[Derived, str, list[ModelEntry]]:
    """``model`` saved under its own name, over what its ``FROM`` names: as saved, the name
    its ``FROM`` got, and the catalogue with it."""
    await _new_name(request, model.name)
    model, base = await _over(request, model)
    router = services_of(request).router
    router.store.save(model, base)
    return model, base, await router.catalogue()


def _derived_of(req: CreateRequest, name: str) -> Derived:
    for what in ("files", "adapters", "quantize", "draft_files", "draft_quantize"):
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


@endpoints.post("/api/create")
async def create(request: Request) -> Response:
    """A derived model: a name over a served model with its own system prompt, default
    options and leading messages, kept as a Modelfile in ADAPTER_MODELS_DIR."""
    _, data = await read_body(request)
    req = parse(CreateRequest, data)
    name = _name(req.target)
    model, base, entries = await _made(request, _derived_of(req, name))
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


@endpoints.post("/api/copy")
async def copy(request: Request) -> Response:
    a = await asked(request, CopyRequest)
    if not a.req.destination.strip():
        raise OllamaError(400, f'destination "{a.req.destination}" is invalid')
    name = _name(a.req.destination)
    derived = a.entry.derived
    await _made(request, derived.with_name(name) if derived else Derived(name, a.entry.name))
    return Response(status_code=200)


@endpoints.delete("/api/delete")
async def delete(request: Request) -> Response:
    a = await asked(request, ModelRequest)
    router = services_of(request).router
    if a.entry.derived is None:
        what = "an alias (MODEL_ALIASES)" if a.entry.alias_of else "a model vLLM serves"
        if not a.backend.derives:
            what = f"a model of {a.backend.title} (delete it there)"
        raise OllamaError(
            403,
            f"model '{a.req.target}' is {what} and keeps serving; only derived models are "
            "deleted here",
        )
    router.store.delete(a.entry.derived.name)
    await router.catalogue()
    return Response(status_code=200)


@endpoints.head("/api/blobs/{digest}")
async def blob_exists(digest: str) -> Response:
    return Response(status_code=404)


@endpoints.post("/api/blobs/{digest}")
async def blob_upload(digest: str) -> Response:
    raise OllamaError(501, f"blob upload is not supported: {MANAGED}")
