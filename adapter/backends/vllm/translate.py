"""Pure translation between Ollama's API and vLLM's OpenAI-compatible API. No I/O here.

Requests go Ollama -> OpenAI as dicts ready to serialise; answers come back OpenAI -> Ollama.
Streaming chunks are mapped with plain dict access and written as prebuilt NDJSON bytes,
because every generated token passes through this code.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import string
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from adapter.api.schemas import ChatRequest, GenerateRequest, Message, Tool
from adapter.errors import OllamaError

# --------------------------------------------------------------------------- time and ids

_ts_cache: tuple[int, bytes] = (-1, b"")


def created_at(ns: int | None = None) -> str:
    """Ollama's ``created_at``: RFC 3339 in UTC, nanoseconds with trailing zeros trimmed."""
    return created_at_bytes(ns).decode()


def created_at_bytes(ns: int | None = None) -> bytes:
    """``created_at`` as bytes; the seconds part is formatted once per second."""
    global _ts_cache
    if ns is None:
        ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    if _ts_cache[0] != sec:
        _ts_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode())
    head = _ts_cache[1]
    if frac == 0:
        return head + b"Z"
    return head + b"." + (b"%09d" % frac).rstrip(b"0") + b"Z"


_ALNUM = string.ascii_letters + string.digits
_LOWER_ALNUM = string.ascii_lowercase + string.digits


def upstream_call_id() -> str:
    """A tool-call id for vLLM: 9 alphanumerics, which every chat template accepts (Mistral's too)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(9))


def ollama_call_id() -> str:
    """A tool-call id in Ollama's own form, ``call_`` and 8 lowercase alphanumerics."""
    return "call_" + "".join(secrets.choice(_LOWER_ALNUM) for _ in range(8))


# --------------------------------------------------------------------------- JSON

_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<![0-9a-fA-F]{4})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def loads_lenient(data: bytes | str, *, exact: bool = False) -> Any:
    """``orjson.loads``, falling back where orjson is stricter than JSON itself: lone UTF-16
    surrogate escapes (made U+FFFD), which a model's text can contain. ``exact`` uses the
    stdlib parser first, which keeps integers beyond 64 bits (orjson makes them floats):
    models writing JSON under a schema produce such numbers in tool arguments."""
    raw = data.encode() if isinstance(data, str) else data
    if exact:
        return json.loads(_LONE_SURROGATE.sub(rb"\\ufffd", raw))
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return orjson.loads(_LONE_SURROGATE.sub(rb"\\ufffd", raw))


def dumps(obj: Any) -> bytes:
    """``orjson.dumps``, with the stdlib as fallback for what orjson refuses (integers beyond
    64 bits)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- options

_FLOAT_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "min_p": "min_p",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "repeat_penalty": "repetition_penalty",
}
_INT_OPTIONS = frozenset({"num_predict", "top_k", "seed"})
# Every other key Ollama knows (num_ctx, num_gpu, mirostat, typical_p, ...) has no vLLM
# per-request equivalent; like Ollama with unknown keys, the adapter accepts and ignores them.


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OllamaError(400, f'option "{key}" must be of type number')
    return float(value)


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise OllamaError(400, f'option "{key}" must be of type integer')
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        raise OllamaError(400, f'option "{key}" must be of type integer')
    return value


def _stop_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise OllamaError(400, 'option "stop" must be of type array')


def sampling_params(
    options: Mapping[str, Any] | None,
    *,
    num_predict: int | None = None,
    max_model_len: int | None = None,
    completions: bool = False,
) -> dict[str, Any]:
    """Map Ollama ``options`` to vLLM sampling fields, forwarding only what the client set.

    ``num_predict`` is the top-level value some clients send; inside ``options`` wins.
    The completions endpoint defaults ``max_tokens`` to 16, so for it an unbounded request
    asks for the whole context (vLLM clamps prompt + output to ``max_model_len``).
    """
    out: dict[str, Any] = {}
    predict = num_predict
    for key, value in (options or {}).items():
        if value is None:
            continue
        target = _FLOAT_OPTIONS.get(key)
        if target is not None:
            out[target] = _number(key, value)
        elif key == "num_predict":
            predict = _integer(key, value)
        elif key == "top_k":
            top_k = _integer(key, value)
            out["top_k"] = top_k if top_k > 0 else -1
        elif key == "seed":
            seed = _integer(key, value)
            if seed >= 0:
                out["seed"] = seed
        elif key == "stop":
            stops = _stop_list(value)
            if stops:
                out["stop"] = stops
    if predict is not None and predict > 0:
        out["max_tokens"] = min(predict, max_model_len) if max_model_len else predict
    elif completions and max_model_len:
        out["max_tokens"] = max_model_len
    return out


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


_THINK_LEVELS = frozenset({"low", "medium", "high", "max"})


def think_params(think: bool | str | None) -> dict[str, Any]:
    """Ollama ``think`` to the chat template's thinking switch (and ``reasoning_effort``)."""
    if think is None:
        return {}
    if isinstance(think, bool):
        return {"chat_template_kwargs": {"enable_thinking": think}}
    level = think.lower()
    if level in ("true", "false"):
        return {"chat_template_kwargs": {"enable_thinking": level == "true"}}
    if level not in _THINK_LEVELS:
        raise OllamaError(
            400,
            f'invalid think value: "{think}" (must be "high", "medium", "low", "max", '
            "true, or false)",
        )
    return {"chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": level}


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


def _content(text: str, images: Sequence[str] | None) -> str | list[dict[str, Any]]:
    if not images:
        return text
    parts: list[dict[str, Any]] = [image_part(img) for img in images]
    if text:
        parts.append({"type": "text", "text": text})
    return parts


def _arguments_json(arguments: dict[str, Any] | str | None) -> str:
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments or "{}"
    return orjson.dumps(arguments).decode()


def chat_messages(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """Ollama messages to OpenAI messages.

    Tool results are paired with the assistant's calls by position (by ``tool_name`` first
    when given), as Ollama pairs them; calls without ids get one, because chat templates
    and vLLM's tool parsers need ``tool_call_id``.
    """
    out: list[dict[str, Any]] = []
    pending: deque[tuple[str, str]] = deque()
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
                    call_id = call.id or upstream_call_id()
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
            item["tool_call_id"] = tool_call_id or upstream_call_id()
            if name:
                item["name"] = name
            out.append(item)
        else:
            out.append({"role": role, "content": _content(text, msg.images)})
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
    *,
    stream: bool,
    max_model_len: int | None,
    completions: bool = False,
) -> dict[str, Any]:
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(
        sampling_params(
            req.options,
            num_predict=req.num_predict,
            max_model_len=max_model_len,
            completions=completions,
        )
    )
    fmt = response_format(req.format)
    if fmt is not None:
        body["response_format"] = fmt
    if not completions:
        body.update(think_params(req.think))
        body.update(logprob_params(req.logprobs, req.top_logprobs))
    else:
        lp = logprob_params(req.logprobs, req.top_logprobs)
        if lp:
            body["logprobs"] = lp.get("top_logprobs", 1)
    return body


def chat_body(
    req: ChatRequest, served: str, *, stream: bool, max_model_len: int | None
) -> dict[str, Any]:
    """The ``/v1/chat/completions`` body for an Ollama chat request."""
    body: dict[str, Any] = {"model": served, "messages": chat_messages(req.messages or [])}
    tools = tools_param(req.tools)
    if tools is not None:
        body["tools"] = tools
    return _common(req, body, stream=stream, max_model_len=max_model_len)


def generate_uses_completions(req: GenerateRequest) -> bool:
    """Raw prompts and fill-in-the-middle go to ``/v1/completions``; the rest is templated."""
    return bool(req.raw) or bool(req.suffix)


def generate_body(
    req: GenerateRequest, served: str, *, stream: bool, max_model_len: int | None
) -> tuple[str, dict[str, Any]]:
    """The upstream path and body for an Ollama generate request."""
    if req.raw and (req.template or req.system or req.context):
        raise OllamaError(400, "raw mode does not support template, system, or context")
    prompt = req.prompt or ""
    if generate_uses_completions(req):
        if req.images:
            raise OllamaError(400, "raw mode does not support images")
        body: dict[str, Any] = {"model": served, "prompt": prompt}
        if req.suffix:
            body["suffix"] = req.suffix
        path = "/v1/completions"
        _common(req, body, stream=stream, max_model_len=max_model_len, completions=True)
        return path, body
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": req.system})
    messages.append({"role": "user", "content": _content(prompt, req.images)})
    body = {"model": served, "messages": messages, "return_token_ids": True}
    _common(req, body, stream=stream, max_model_len=max_model_len)
    return "/v1/chat/completions", body


def uses_context(req: GenerateRequest) -> bool:
    """A templated generate that continues an earlier answer's ``context`` (token ids)."""
    return bool(req.context) and not generate_uses_completions(req) and not req.images


def continuation_body(
    req: GenerateRequest, served: str, prompt: list[int], *, stream: bool, max_model_len: int | None
) -> dict[str, Any]:
    """``/v1/completions`` over token ids: the earlier ``context`` and the new templated turn."""
    body: dict[str, Any] = {"model": served, "prompt": prompt, "return_token_ids": True}
    return _common(req, body, stream=stream, max_model_len=max_model_len, completions=True)


# --------------------------------------------------------------------------- responses


def done_reason(finish_reason: str | None) -> str:
    """vLLM ``finish_reason`` to Ollama ``done_reason`` (Ollama knows only stop and length)."""
    return "length" if finish_reason == "length" else "stop"


@dataclass(slots=True)
class Timings:
    """Monotonic nanosecond marks taken by the adapter for Ollama's duration fields."""

    start: int
    sent: int = 0
    first: int = 0
    end: int = 0

    def finish(self, resp: Mapping[str, Any]) -> None:
        """Close a non-streaming request: without vLLM's per-request metrics the time to the
        first token is unknown, so all upstream time counts as generation (tokens/s stays a
        lower bound instead of becoming absurd)."""
        self.end = time.perf_counter_ns()
        ttft = (resp.get("metrics") or {}).get("time_to_first_token_ms")
        if isinstance(ttft, int | float) and ttft > 0:
            self.first = min(self.sent + int(ttft * 1_000_000), self.end)
        else:
            self.first = self.sent

    def metrics(self, usage: Mapping[str, Any] | None) -> dict[str, int]:
        end = self.end or time.perf_counter_ns()
        sent = self.sent or self.start
        first = self.first or end
        usage = usage or {}
        return {
            "total_duration": max(end - self.start, 1),
            "load_duration": max(sent - self.start, 1),
            "prompt_eval_count": int(usage.get("prompt_tokens") or 0),
            "prompt_eval_duration": max(first - sent, 1),
            "eval_count": int(usage.get("completion_tokens") or 0),
            "eval_duration": max(end - first, 1),
        }


def tool_calls_out(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool calls (string arguments) to Ollama's (object arguments, ``function.index``)."""
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        raw = fn.get("arguments")
        arguments: Any
        if isinstance(raw, str):
            try:
                arguments = loads_lenient(raw, exact=True) if raw.strip() else {}
            except ValueError:
                arguments = {"arguments": raw}
        else:
            arguments = raw or {}
        if not isinstance(arguments, dict):
            arguments = {"value": arguments}
        out.append(
            {
                "id": call.get("id") or ollama_call_id(),
                "function": {"index": i, "name": fn.get("name") or "", "arguments": arguments},
            }
        )
    return out


def logprobs_out(logprobs: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """OpenAI chat ``logprobs.content`` to Ollama's list of ``{token, logprob, top_logprobs}``."""
    if not logprobs:
        return None
    content = logprobs.get("content")
    if not content:
        return None
    out = []
    for item in content:
        entry: dict[str, Any] = {"token": item.get("token", ""), "logprob": item.get("logprob")}
        if item.get("bytes") is not None:
            entry["bytes"] = item["bytes"]
        tops = item.get("top_logprobs")
        if tops:
            entry["top_logprobs"] = [
                {"token": t.get("token", ""), "logprob": t.get("logprob"), "bytes": t.get("bytes")}
                for t in tops
            ]
        out.append(entry)
    return out


def completion_logprobs_out(logprobs: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """Legacy completions ``logprobs`` (parallel lists) to Ollama's list."""
    if not logprobs or not logprobs.get("tokens"):
        return None
    tokens = logprobs["tokens"]
    values = logprobs.get("token_logprobs") or [None] * len(tokens)
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    out = []
    for token, value, top in zip(tokens, values, tops, strict=False):
        entry: dict[str, Any] = {"token": token, "logprob": value}
        if top:
            entry["top_logprobs"] = [{"token": t, "logprob": v} for t, v in top.items()]
        out.append(entry)
    return out


def chat_response(resp: Mapping[str, Any], model: str, timings: Timings) -> dict[str, Any]:
    """A non-streaming OpenAI chat completion as Ollama's chat answer."""
    choice = (resp.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    message: dict[str, Any] = {"role": "assistant", "content": msg.get("content") or ""}
    thinking = msg.get("reasoning") or msg.get("reasoning_content")
    if thinking:
        message["thinking"] = thinking
    if msg.get("tool_calls"):
        message["tool_calls"] = tool_calls_out(msg["tool_calls"])
    out: dict[str, Any] = {
        "model": model,
        "created_at": created_at(),
        "message": message,
        "done": True,
        "done_reason": done_reason(choice.get("finish_reason")),
    }
    out.update(timings.metrics(resp.get("usage")))
    lp = logprobs_out(choice.get("logprobs"))
    if lp:
        out["logprobs"] = lp
    return out


def generate_response(
    resp: Mapping[str, Any], model: str, timings: Timings, *, completions: bool
) -> dict[str, Any]:
    """A non-streaming OpenAI answer (chat or completions) as Ollama's generate answer."""
    choice = (resp.get("choices") or [{}])[0]
    thinking = None
    lp: list[dict[str, Any]] | None
    if completions:
        text = choice.get("text") or ""
        lp = completion_logprobs_out(choice.get("logprobs"))
    else:
        msg = choice.get("message") or {}
        text = msg.get("content") or ""
        thinking = msg.get("reasoning") or msg.get("reasoning_content")
        lp = logprobs_out(choice.get("logprobs"))
    out: dict[str, Any] = {"model": model, "created_at": created_at(), "response": text}
    if thinking:
        out["thinking"] = thinking
    out["done"] = True
    out["done_reason"] = done_reason(choice.get("finish_reason"))
    if not completions:
        prompt_ids = resp.get("prompt_token_ids")
        if prompt_ids is not None:
            out["context"] = list(prompt_ids) + list(choice.get("token_ids") or [])
    out.update(timings.metrics(resp.get("usage")))
    if lp:
        out["logprobs"] = lp
    return out


def load_response(model: str, *, chat: bool, unload: bool) -> dict[str, Any]:
    """The answer to an empty chat or generate: the model is 'loaded' (vLLM always is)."""
    out: dict[str, Any] = {"model": model, "created_at": created_at()}
    if chat:
        out["message"] = {"role": "assistant", "content": ""}
    else:
        out["response"] = ""
    out["done"] = True
    out["done_reason"] = "unload" if unload else "load"
    return out


def upstream_error_message(body: bytes) -> str:
    """The readable message inside any of vLLM's error shapes (nested, flat, plain string)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip() or "empty response"
    return error_message_of(data)


def error_message_of(data: Any) -> str:
    """The message of a decoded vLLM error object."""
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, str):
            return err
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail")
            if isinstance(msg, str):
                return msg
            if msg is not None:
                return orjson.dumps(msg).decode()
    return orjson.dumps(data).decode()


def upstream_error(status: int, body: bytes, model: str | None) -> OllamaError:
    """Map a vLLM error answer to the error Ollama would give."""
    message = upstream_error_message(body)
    if status == 404 and model is not None and "does not exist" in message:
        return OllamaError(404, f"model '{model}' not found")
    if status == 400 and model is not None and "is not a multimodal model" in message:
        return OllamaError(
            400, f'"{model}" does not support images: vLLM serves it as a text model'
        )
    if status == 400 and model is not None and "tool choice requires" in message:
        return OllamaError(400, f'"{model}" does not support tools: {message}')
    if status in (401, 403):
        return OllamaError(
            502, f"vLLM refused the adapter's credentials (check VLLM_API_KEY): {message}"
        )
    if 400 <= status < 500:
        return OllamaError(status if status in (400, 404, 413, 429) else 400, message)
    if status == 503:
        return OllamaError(503, f"vLLM is unavailable: {message}")
    return OllamaError(500, f"vLLM error: {message}")


# --------------------------------------------------------------------------- streaming

_dumps = orjson.dumps
_CHAT_MID = b'","message":{"role":"assistant","content":'
_GEN_MID = b'","response":'
_NOT_DONE = b',"done":false}\n'
_CHAT_END = b"}" + _NOT_DONE


class StreamTranslator:
    """Turns vLLM stream chunks into Ollama NDJSON lines for one chat or generate request.

    Content, thinking and logprobs go out as they come, one line per delta. Tool-call
    fragments are collected per index and sent once, complete, just before the final line,
    because clients append calls from every line. Usage and timings go on the final line only.
    """

    __slots__ = (
        "_calls",
        "_chat",
        "_completions",
        "_context",
        "_head",
        "_mid",
        "_now",
        "_prefix",
        "finish_reason",
        "model",
        "timings",
        "usage",
    )

    def __init__(
        self,
        model: str,
        timings: Timings,
        *,
        chat: bool,
        completions: bool = False,
        context: bool | list[int] = False,
    ) -> None:
        """``context``: collect the prompt's and the answer's token ids for the last line,
        starting from the given ids when it is a list (a prompt sent as token ids)."""
        self.model = model
        self.timings = timings
        self._chat = chat
        self._completions = completions
        # ``created_at`` of the lines being made: the relay renews it once per network read
        # (lines read together were made together; a timestamp per token shows in profiles).
        self._prefix = b'{"model":' + _dumps(model) + b',"created_at":"'
        self._mid = _CHAT_MID if chat else _GEN_MID
        self.now = created_at_bytes()
        self._calls: dict[int, list[Any]] = {}
        self._context: list[int] | None = (
            list(context) if isinstance(context, list) else [] if context else None
        )
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    @property
    def now(self) -> bytes:
        """``created_at`` of the lines made from now on (its bytes, without quotes)."""
        return self._now

    @now.setter
    def now(self, value: bytes) -> None:
        self._now = value
        self._head = self._prefix + value + self._mid  # every content line starts so

    def feed(self, chunk: Mapping[str, Any]) -> bytes:
        """One decoded SSE event in, zero or one NDJSON line out."""
        choices = chunk.get("choices")
        if not choices:
            if "error" in chunk:
                raise OllamaError(500, error_message_of(chunk))
            usage = chunk.get("usage")
            if usage:
                self.usage = usage
            return b""
        if self._context is not None:
            prompt_ids = chunk.get("prompt_token_ids")
            if prompt_ids:
                self._context[:0] = prompt_ids
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if self._context is not None:
            ids = choice.get("token_ids")
            if ids:
                self._context.extend(ids)
        thinking = None
        if self._completions:
            text = choice.get("text")
            lp = completion_logprobs_out(choice.get("logprobs")) if choice.get("logprobs") else None
        else:
            delta = choice.get("delta")
            if not delta:
                return b""
            text = delta.get("content")
            thinking = delta.get("reasoning") or delta.get("reasoning_content")
            calls = delta.get("tool_calls")
            if calls:
                self._add_calls(calls)
            lp = logprobs_out(choice.get("logprobs")) if choice.get("logprobs") else None
        if not text and not thinking and not lp:
            if self.timings.first == 0 and self._calls:
                self.timings.first = time.perf_counter_ns()
            return b""
        if self.timings.first == 0:
            self.timings.first = time.perf_counter_ns()
        if not thinking and not lp:
            return self._head + _dumps(text) + (_CHAT_END if self._chat else _NOT_DONE)
        line = self._head + _dumps(text or "")
        if thinking:
            line += b',"thinking":' + _dumps(thinking)
        if self._chat:
            line += b"}"
        if lp:
            line += b',"logprobs":' + _dumps(lp)
        return line + _NOT_DONE

    def _add_calls(self, calls: Iterable[Mapping[str, Any]]) -> None:
        for frag in calls:
            index = frag.get("index", len(self._calls))
            slot = self._calls.get(index)
            if slot is None:
                slot = self._calls[index] = [None, "", []]
            if frag.get("id"):
                slot[0] = frag["id"]
            fn = frag.get("function") or {}
            if fn.get("name"):
                slot[1] = fn["name"]
            args = fn.get("arguments")
            if args:
                slot[2].append(args if isinstance(args, str) else orjson.dumps(args).decode())

    def final(self) -> bytes:
        """The collected tool calls (if any) and the ``done: true`` line with the metrics."""
        self.timings.end = time.perf_counter_ns()
        out = b""
        if self._calls:
            calls = [
                {"id": cid, "function": {"name": name, "arguments": "".join(args)}}
                for cid, name, args in (self._calls[i] for i in sorted(self._calls))
            ]
            message = {"role": "assistant", "content": "", "tool_calls": tool_calls_out(calls)}
            line = {"model": self.model, "created_at": created_at(), "message": message}
            out += dumps({**line, "done": False}) + b"\n"
        last: dict[str, Any] = {"model": self.model, "created_at": created_at()}
        if self._chat:
            last["message"] = {"role": "assistant", "content": ""}
        else:
            last["response"] = ""
        last["done"] = True
        last["done_reason"] = done_reason(self.finish_reason)
        if self._context:
            last["context"] = self._context
        last.update(self.timings.metrics(self.usage))
        return out + _dumps(last) + b"\n"


def sse_error(message: str) -> bytes:
    """An OpenAI stream's error event and end marker, as vLLM itself ends a failed stream."""
    err = {"error": {"message": message, "type": "BadGateway", "param": None, "code": 502}}
    return b"data: " + _dumps(err) + b"\n\ndata: [DONE]\n\n"


def error_line(message: str) -> bytes:
    """The last NDJSON line of a stream that failed after it started."""
    return _dumps({"error": message}) + b"\n"


# --------------------------------------------------------------------------- keep_alive

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def keep_alive_seconds(value: float | str | None) -> float | None:
    """``keep_alive`` in seconds: a number, a numeric string, or a Go duration (``"1h30m"``).

    Ollama rejects a bare numeric string; clients send them anyway, so the adapter accepts it.
    vLLM keeps every model loaded, so the value only decides between ``load`` and ``unload``.
    """
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    text = value.strip()
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if text[0] in "+-" else text
    total, pos = 0.0, 0
    for match in _DURATION_RE.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(body) or pos == 0:
        raise OllamaError(400, f'time: invalid duration "{value}"')
    return sign * total


# --------------------------------------------------------------------------- embeddings


def embed_body(served: str, inputs: list[str], *, truncate: bool) -> dict[str, Any]:
    """The ``/v1/embeddings`` body; ``truncate`` cuts over-long input to the context."""
    body: dict[str, Any] = {"model": served, "input": inputs}
    if truncate:
        body["truncate_prompt_tokens"] = -1
    return body


def normalized(vector: Sequence[float], dimensions: int | None = None) -> list[float]:
    """Cut to ``dimensions`` (when given), then scale to unit length, as Ollama's embed does."""
    values = list(vector[:dimensions] if dimensions else vector)
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values] if norm > 0 else values


def embeddings_out(resp: Mapping[str, Any]) -> list[list[float]]:
    """The vectors of an OpenAI embeddings answer, in input order."""
    data = sorted(resp.get("data") or [], key=lambda d: d.get("index", 0))
    return [list(d.get("embedding") or []) for d in data]
