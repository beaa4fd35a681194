"""The first leg of every request: read and validate the body, find the model and its backend.

Routes go parse (here) -> ask (the backend) -> answer (``answers.py``); ``asked`` is the
first leg whole, written once for every route about a model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from adapter.backends.base import Backend, Target
from adapter.errors import ClientDisconnected, OllamaError
from adapter.ollama_api.models import ModelEntry
from adapter.ollama_api.requests import AboutAModel
from adapter.requestctx import current
from adapter.services import services_of

M = TypeVar("M", bound=BaseModel)
A = TypeVar("A", bound=AboutAModel)
log = logging.getLogger("adapter.requests")


async def read_body(request: Request) -> tuple[bytes, dict[str, Any]]:
    """The body bytes and their JSON object, whatever the Content-Type (``curl -d`` sends a
    form type). Read straight from ``receive``: nothing else reads the body, and nothing is
    read past ``ADAPTER_MAX_BODY_BYTES`` (413) nor decoded past the image and message limits
    (400 naming the limit)."""
    settings = services_of(request).settings
    limit = settings.max_body_bytes
    message = await request.receive()
    if message["type"] != "http.request":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    if message.get("more_body", False):
        parts = [body]  # large bodies (images) come in pieces: join once
        size = len(body)
        while message.get("more_body", False):
            message = await request.receive()
            if message["type"] != "http.request":
                raise ClientDisconnected
            piece: bytes = message.get("body", b"")
            size += len(piece)
            if size > limit:
                raise BodyTooLarge(limit)
            parts.append(piece)
        body = b"".join(parts)
    if len(body) > limit:
        raise BodyTooLarge(limit)
    if settings.log_bodies:  # debugging only: bodies carry prompts, client data
        log.debug("request body (%d bytes): %r", len(body), body[:4096])
    if not body.strip():
        raise OllamaError(400, "missing request body")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OllamaError(400, f"invalid JSON in request body: {exc}") from None
    if not isinstance(data, dict):
        raise OllamaError(400, "request body must be a JSON object")
    check_counts(data, settings.max_messages, settings.max_images)
    return body, data


class BodyTooLarge(OllamaError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body too large: more than {limit} bytes (ADAPTER_MAX_BODY_BYTES)"
        )


def check_counts(data: dict[str, Any], max_messages: int, max_images: int) -> None:
    """The message and image limits, on the decoded body before anything is built from it:
    Ollama's ``images`` (a request's and each message's) and OpenAI's and Anthropic's image
    parts in message contents."""
    messages = data.get("messages")
    if isinstance(messages, list) and len(messages) > max_messages:
        raise OllamaError(
            400,
            f"too many messages: {len(messages)} (the limit is {max_messages}, "
            "ADAPTER_MAX_MESSAGES)",
        )
    images = _image_count(data.get("images"))
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict):
            images += _image_count(message.get("images"))
            content = message.get("content")
            if isinstance(content, list):
                images += sum(
                    1
                    for part in content
                    if isinstance(part, dict) and part.get("type") in IMAGE_PARTS
                )
    if images > max_images:
        raise OllamaError(
            400, f"too many images: {images} (the limit is {max_images}, ADAPTER_MAX_IMAGES)"
        )


#: Content parts that carry an image (OpenAI's, the Responses API's, Anthropic's).
IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})


def _image_count(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate a request object; the first problem becomes Ollama's 400 message."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise OllamaError(400, f"invalid value for {where}: {err['msg']}") from None


@dataclass(slots=True)  # not frozen: a frozen one costs half a microsecond more a request
class Asked(Generic[A]):
    """A request read, parsed and placed: the body as sent and decoded, its model's entry and
    the backend serving it."""

    req: A
    raw: bytes
    data: dict[str, Any]
    entry: ModelEntry
    backend: Backend


async def asked(request: Request, schema: type[A], *, missing: str | None = None) -> Asked[A]:
    """The first leg of a route about a model: the body read and parsed as ``schema``, the
    model it names found (``schema.UNNAMED`` when it names none, Ollama's 404 in
    ``schema.not_found``'s words, or ``missing``, when nothing serves it)."""
    raw, data = await read_body(request)
    req = parse(schema, data)
    name = req.target
    if not name:
        raise OllamaError(*schema.UNNAMED)
    found = await target(request, name, missing=missing, schema=schema)
    return Asked(req, raw, data, found.entry, found.backend)


async def target(
    request: Request,
    name: str,
    *,
    missing: str | None = None,
    schema: type[AboutAModel] = AboutAModel,
) -> Target:
    """The entry and backend serving ``name``; Ollama's 404 (``missing``, or in ``schema``'s
    words) otherwise."""
    found = await services_of(request).router.find(name)
    if found is None:
        raise OllamaError(404, missing or schema.not_found(name))
    info = current()
    if info is not None:
        info.model, info.backend = name, found.backend.name
    return found
