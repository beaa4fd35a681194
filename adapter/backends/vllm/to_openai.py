"""Ollama requests as vLLM's OpenAI-compatible request bodies. Pure: no I/O, no clock; ids
come from the ``Clock`` the caller passes."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from adapter.clock import Clock
from adapter.errors import OllamaError
from adapter.ollama_api.modelfile import merged_options
from adapter.ollama_api.models import ModelEntry
from adapter.ollama_api.options import sampling_params
from adapter.ollama_api.requests import ChatRequest, GenerateRequest, Message, Tool

# --------------------------------------------------------------------------- request fields


def response_format(fmt: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """Ollama ``format`` to OpenAI ``response_format`` (``""`` and ``null`` mean none)."""
    if fmt is None or fmt == "":
        return None
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "schema", "schema": fmt}}
    if fmt == "json":
        return {"type": "json_object"}
    if fmt.lstrip().startswith("{"):
        try:
            schema = orjson.loads(fmt)
        except orjson.JSONDecodeError:
            schema = None
        if isinstance(schema, dict):
            return {"type": "json_schema", "json_schema": {"name": "schema", "schema": schema}}
    raise OllamaError(
        400, f'invalid format: "{fmt}"; expected "json" or a valid JSON Schema object'
    )


THINK_LEVELS = ("high", "medium", "low", "max")
_THINK_CHOICES = '"high", "medium", "low", "max", true, or false'


def think_value(think: Any) -> bool | str | None:
    """Ollama's ``think``: a bool, one of its levels, or unset; anything else is Ollama's 400."""
    if think is None or isinstance(think, bool):
        return think
    if isinstance(think, str):
        if think in THINK_LEVELS:
            return think
        raise OllamaError(400, f'invalid think value: "{think}" (must be {_THINK_CHOICES})')
    raise OllamaError(400, f"think must be a boolean or string ({_THINK_CHOICES})")


def resolve_think(think: Any, entry: ModelEntry, model: str) -> bool | str | None:
    """What to ask of the model, as Ollama decides: a thinking model thinks unless told not
    to; asking thinking of any other model is a 400 (``think: false`` is fine, and sends
    nothing)."""
    value = think_value(think)
    if "thinking" in entry.capabilities:
        return True if value is None else value
    if value:
        raise OllamaError(400, f'"{model}" does not support thinking')
    return None


def think_params(think: bool | str | None) -> dict[str, Any]:
    """A resolved ``think`` as the chat template's switch (and ``reasoning_effort``)."""
    if think is None:
        return {}
    if isinstance(think, bool):
        return {"chat_template_kwargs": {"enable_thinking": think}}
    return {"chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": think}


def require(entry: ModelEntry, capability: str, model: str, what: str | None = None) -> None:
    """Ollama's 400 for a request the model cannot serve: ``"<model>" does not support X``."""
    if capability not in entry.capabilities:
        raise OllamaError(400, f'"{model}" does not support {what or capability}')


def logprob_params(logprobs: bool | None, top_logprobs: int | None) -> dict[str, Any]:
    """Ollama ``logprobs``/``top_logprobs`` (0-20) to OpenAI's fields."""
    top = top_logprobs or 0
    if top < 0 or top > 20:
        raise OllamaError(400, "top_logprobs must be between 0 and 20")
    if not logprobs and top == 0:
        return {}
    out: dict[str, Any] = {"logprobs": True}
    if top:
        out["top_logprobs"] = top
    return out


_IMAGE_MAGIC = (
    ("iVBORw0KGgo", "image/png"),
    ("/9j/", "image/jpeg"),
    ("R0lGOD", "image/gif"),
    ("UklGR", "image/webp"),
    ("Qk", "image/bmp"),
)


def image_part(image: str) -> dict[str, Any]:
    """A base64 image (as Ollama clients send it) as an OpenAI ``image_url`` data-URI part."""
    if image.startswith("data:"):
        return {"type": "image_url", "image_url": {"url": image}}
    data = "".join(image.split())
    try:
        base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise OllamaError(400, "illegal base64 data in images") from None
    mime = next((m for prefix, m in _IMAGE_MAGIC if data.startswith(prefix)), "image/jpeg")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def _content(
    text: str, images: Sequence[str] | None, tags: list[int] | None = None
) -> str | list[dict[str, Any]]:
    """A message's content: image parts and the text for a vision model; for any other
    (``tags`` given: the number of images tagged so far) the text with Ollama's image
    markers, as Ollama renders a prompt for a model without a projector."""
    if not images:
        return text
    if tags is not None:
        return _tagged(text, images, tags)
    parts: list[dict[str, Any]] = [image_part(img) for img in images]
    if text:
        parts.append({"type": "text", "text": text})
    return parts


def _tagged(text: str, images: Sequence[str], tags: list[int]) -> str:
    """Ollama's ``imageTaggedMessages``: each image becomes ``[img-N]`` (N counted over the
    whole chat), in place of an ``[img]`` the text holds, else in front of the text. The image
    itself is checked (its base64) and then left out: a text-only model cannot see it."""
    prefix = ""
    for image in images:
        image_part(image)
        tag = f"[img-{tags[0]}]"
        tags[0] += 1
        if "[img]" in text:
            text = text.replace("[img]", tag, 1)
        else:
            prefix += tag
    return prefix + text


def _arguments_json(arguments: dict[str, Any] | str | None) -> str:
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments or "{}"
    return orjson.dumps(arguments).decode()


def chat_messages(
    messages: Iterable[Message], clock: Clock, *, vision: bool = True
) -> list[dict[str, Any]]:
    """Ollama messages to OpenAI messages (images as Ollama tags them when not ``vision``).

    Tool results are paired with the assistant's calls by position (by ``tool_name`` first
    when given), as Ollama pairs them; calls without ids get one, because chat templates
    and vLLM's tool parsers need ``tool_call_id``.
    """
    out: list[dict[str, Any]] = []
    pending: deque[tuple[str, str]] = deque()
    tags = None if vision else [0]
    for msg in messages:
        role = msg.role
        text = msg.content or ""
        if role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": text}
            if msg.thinking:
                item["reasoning"] = msg.thinking
            if msg.tool_calls:
                pending.clear()
                calls = []
                for call in msg.tool_calls:
                    call_id = call.id or clock.upstream_call_id()
                    calls.append(
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": call.function.name,
                                "arguments": _arguments_json(call.function.arguments),
                            },
                        }
                    )
                    pending.append((call_id, call.function.name))
                item["tool_calls"] = calls
                if not text:
                    item["content"] = None
            out.append(item)
        elif role == "tool":
            item = {"role": "tool", "content": text}
            tool_call_id, name = msg.tool_call_id, msg.tool_name
            match = _take_pending(pending, tool_call_id, name)
            if match is not None:
                tool_call_id = tool_call_id or match[0]
                name = name or match[1]
            item["tool_call_id"] = tool_call_id or clock.upstream_call_id()
            if name:
                item["name"] = name
            out.append(item)
        else:
            out.append({"role": role, "content": _content(text, msg.images, tags)})
    return out


def _take_pending(
    pending: deque[tuple[str, str]], call_id: str | None, name: str | None
) -> tuple[str, str] | None:
    if not pending:
        return None
    for i, (pid, pname) in enumerate(pending):
        if (call_id and pid == call_id) or (not call_id and name and pname == name):
            del pending[i]
            return (pid, pname)
    if call_id or name:
        return None
    return pending.popleft()


def tools_param(tools: Sequence[Tool] | None) -> list[dict[str, Any]] | None:
    """Ollama tools to OpenAI tools; ``[]`` means none, and missing ``parameters`` are filled."""
    if not tools:
        return None
    out = []
    for tool in tools:
        spec = tool.model_dump(exclude_none=True)
        spec["type"] = "function"
        function = dict(spec.get("function") or {})
        if not function.get("parameters"):
            function["parameters"] = {"type": "object", "properties": {}}
        spec["function"] = function
        out.append(spec)
    return out


def _common(
    req: ChatRequest | GenerateRequest,
    body: dict[str, Any],
    entry: ModelEntry,
    *,
    stream: bool,
    completions: bool = False,
    defaults: Mapping[str, Any] | None = None,
    interval: int = 1,
) -> dict[str, Any]:
    max_model_len = entry.max_model_len
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        body.update(collected_in_batches(req, entry, interval))
    body.update(
        sampling_params(
            merged_options(
                req.options,
                entry.derived,
                top_level=req.num_predict is not None,
                defaults=defaults,
            ),
            num_predict=req.num_predict,
            max_model_len=max_model_len,
            completions=completions,
        )
    )
    fmt = response_format(req.format)
    if fmt is not None:
        body["response_format"] = fmt
    if not completions:
        body.update(think_params(resolve_think(req.think, entry, req.model)))
        body.update(logprob_params(req.logprobs, req.top_logprobs))
    else:
        lp = logprob_params(req.logprobs, req.top_logprobs)
        if lp:
            body["logprobs"] = lp.get("top_logprobs", 1)
    return body


def chat_body(
    req: ChatRequest,
    entry: ModelEntry,
    *,
    stream: bool,
    clock: Clock,
    defaults: Mapping[str, Any] | None = None,
    interval: int = 1,
) -> dict[str, Any]:
    """The ``/v1/chat/completions`` body for an Ollama chat request to ``entry``; ``defaults``
    are the sampling options sent where neither the request nor the model sets one;
    ``interval``: tokens an event for an answer taken whole (``collected_in_batches``)."""
    require(entry, "completion", req.model, "chat")
    if req.tools:
        require(entry, "tools", req.model)
    # Images sent to a text-only model are not refused: Ollama tags them in the prompt and
    # the model answers the text (its ChatHandler has no vision check).
    vision = "vision" in entry.capabilities
    messages = chat_messages(req.messages or [], clock, vision=vision)
    if entry.derived is not None:
        messages = entry.derived.lead(messages)
    body: dict[str, Any] = {"model": entry.served, "messages": messages}
    tools = tools_param(req.tools)
    if tools is not None:
        body["tools"] = tools
    return _common(req, body, entry, stream=stream, defaults=defaults, interval=interval)


def collected_in_batches(
    req: ChatRequest | GenerateRequest, entry: ModelEntry, interval: int
) -> dict[str, Any]:
    """vLLM's per-request ``stream_interval`` for an answer the client takes whole (``stream:
    false``): vLLM then sends its tokens ``interval`` an event, the first and the last at once,
    so the time to the first token and the end are as exact as with one token an event, and
    vLLM's API server and the adapter are spared a read, a write and a wake-up for most
    tokens. Nothing for a stream (Ollama sends every token as it comes), with tools, or for a
    thinking model: several of vLLM's tool and reasoning parsers assumed one token a chunk
    (vllm-project/vllm#31501)."""
    if (
        req.stream is not False
        or interval <= 1
        or (isinstance(req, ChatRequest) and req.tools)
        or "thinking" in entry.capabilities
    ):
        return {}
    return {"stream_interval": interval}


def generate_uses_completions(req: GenerateRequest) -> bool:
    """Raw prompts and fill-in-the-middle go to ``/v1/completions``; the rest is templated."""
    return bool(req.raw) or bool(req.suffix)


def generate_body(
    req: GenerateRequest,
    entry: ModelEntry,
    *,
    stream: bool,
    defaults: Mapping[str, Any] | None = None,
    interval: int = 1,
) -> tuple[str, dict[str, Any]]:
    """The upstream path and body for an Ollama generate request to ``entry`` (``defaults``
    and ``interval`` as for ``chat_body``)."""
    require(entry, "completion", req.model, "generate")
    if req.suffix:
        require(entry, "insert", req.model)
    if req.raw and (req.template or req.system or req.context):
        raise OllamaError(400, "raw mode does not support template, system, or context")
    prompt = req.prompt or ""
    served = entry.served
    if generate_uses_completions(req):
        if req.images:
            raise OllamaError(400, "raw mode does not support images")
        body: dict[str, Any] = {"model": served, "prompt": prompt}
        if req.suffix:
            body["suffix"] = req.suffix
        path = "/v1/completions"
        _common(
            req, body, entry, stream=stream, completions=True, defaults=defaults, interval=interval
        )
        return path, body
    messages: list[dict[str, Any]] = []
    derived = entry.derived
    system = req.system or (derived.system if derived else None)
    if system:
        messages.append({"role": "system", "content": system})
    if derived is not None and not req.context:
        messages.extend({"role": r, "content": c} for r, c in derived.messages)
    tags = None if "vision" in entry.capabilities else [0]
    messages.append({"role": "user", "content": _content(prompt, req.images, tags)})
    body = {"model": served, "messages": messages, "return_token_ids": True}
    _common(req, body, entry, stream=stream, defaults=defaults, interval=interval)
    return "/v1/chat/completions", body


def uses_context(req: GenerateRequest) -> bool:
    """A templated generate that continues an earlier answer's ``context`` (token ids)."""
    return bool(req.context) and not generate_uses_completions(req) and not req.images


def continuation_body(
    req: GenerateRequest,
    entry: ModelEntry,
    prompt: list[int],
    *,
    stream: bool,
    defaults: Mapping[str, Any] | None = None,
    interval: int = 1,
) -> dict[str, Any]:
    """``/v1/completions`` over token ids: the earlier ``context`` and the new templated turn."""
    body: dict[str, Any] = {"model": entry.served, "prompt": prompt, "return_token_ids": True}
    return _common(
        req, body, entry, stream=stream, completions=True, defaults=defaults, interval=interval
    )


def embed_body(served: str, inputs: list[str], *, truncate: bool) -> dict[str, Any]:
    """The ``/v1/embeddings`` body; ``truncate`` cuts over-long input to the context."""
    body: dict[str, Any] = {"model": served, "input": inputs}
    if truncate:
        body["truncate_prompt_tokens"] = -1
    return body


def conversation_key(messages: Sequence[Message]) -> str:
    """A name for the conversation ``messages`` belong to: a digest of its opening (the
    messages up to and including the first user message), which every later turn resends
    unchanged. Sent as ``X-Session-ID`` when the client names none, it keeps a conversation on
    the replica whose prefix cache holds it behind vLLM's router (``consistent_hash``), and
    spreads different conversations. Nothing that reaches vLLM's router is hidden from it:
    the digest only lets it hash a header instead of the body."""
    digest = hashlib.blake2b(digest_size=8)
    for message in messages:
        digest.update(message.role.encode())
        digest.update(b"\x00")
        digest.update((message.content or "").encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
        for image in message.images or ():
            digest.update(image[:64].encode("ascii", "replace"))
        if message.role == "user":
            break
    return digest.hexdigest()
