"""Byte builders for vLLM-shaped responses (shapes copied from the vLLM 0.32.0 fixtures)."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from benchmarks.common import FINGERPRINT, dumps, token_text

REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    411: b"Length Required",
    431: b"Request Header Fields Too Large",
}
JSON = b"application/json"
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nserver: fake-vllm\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
)
LAST_CHUNK = b"0\r\n\r\n"


def http_response(status: int, body: bytes, ctype: bytes = JSON, close: bool = False) -> bytes:
    """A complete HTTP/1.1 response with a content-length body."""
    conn = b"connection: close\r\n" if close else b""
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\nserver: fake-vllm\r\n" % (status, REASONS.get(status, b"X")),
            b"content-type: " + ctype + b"\r\ncontent-length: %d\r\n" % len(body),
            conn,
            b"\r\n",
            body,
        )
    )


def http_chunk(data: bytes) -> bytes:
    """Frame ``data`` as one chunk of chunked transfer encoding."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def error_body(message: str, etype: str, param: str | None, code: int) -> bytes:
    """vLLM's nested error shape (0.10.1 onward)."""
    return dumps({"error": {"message": message, "type": etype, "param": param, "code": code}})


@dataclass(frozen=True)
class Reply:
    """What one generation request asks for."""

    chat: bool
    model: str
    n: int
    finish: str  # "length" (last token carries finish_reason) or "stop" (empty finish chunk)
    prompt_tokens: int
    unicode: bool


def _usage(r: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": r.prompt_tokens,
        "total_tokens": r.prompt_tokens + r.n,
        "completion_tokens": r.n,
    }


def _new_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + f"{time.time_ns() & 0xFFFFFFFFFFFFFFFF:016x}"


def sse_events(r: Reply) -> list[bytes]:
    """The ``data: ...\\n\\n`` events of a stream, without ``[DONE]`` and without usage."""
    head = b'{"id":"%s","object":"%s","created":%d,"model":%s,"choices":[' % (
        _new_id(r.chat).encode(),
        b"chat.completion.chunk" if r.chat else b"text_completion",
        int(time.time()),
        dumps(r.model),
    )
    events: list[bytes] = []
    if r.chat:
        role = b'{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,'
        role += b'"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}'
        events.append(head + role)

    def piece(text: str, finish: str | None) -> bytes:
        fin = b'"%s","stop_reason":null' % finish.encode() if finish else b"null"
        if r.chat:
            return (
                b'{"index":0,"delta":{"content":%s},"logprobs":null,"finish_reason":%s,'
                % (
                    dumps(text),
                    fin,
                )
                + b'"token_ids":null}]}'
            )
        if not finish:
            fin += b',"stop_reason":null'
        return (
            b'{"index":0,"text":%s,"logprobs":null,"finish_reason":%s,'
            % (
                dumps(text),
                fin,
            )
            + b'"prompt_token_ids":null,"token_ids":null}]}'
        )

    last = r.n - 1 if r.finish == "length" else r.n
    for i in range(last):
        events.append(head + piece(token_text(i, r.unicode), None))
    if r.finish == "length":
        events.append(head + piece(token_text(last, r.unicode), "length"))
    else:
        events.append(head + piece("", r.finish))
    usage = b'],"usage":%s,"system_fingerprint":"%s"}' % (dumps(_usage(r)), FINGERPRINT.encode())
    events.append(head + usage)  # marked: the caller drops it without include_usage
    return [b"data: " + e + b"\n\n" for e in events]


def stream_pieces(
    r: Reply, include_usage: bool, split_bytes: int, delay: float, gap: float
) -> list[tuple[bytes, float]]:
    """HTTP-chunk-framed pieces of a stream with the wait after each, headers first."""
    events = sse_events(r)
    if not include_usage:
        events.pop()
    events.append(b"data: [DONE]\n\n")
    groups: list[list[bytes]]
    if split_bytes <= 0:
        groups = [[e] for e in events]
    elif delay <= 0:
        groups = [_cut(b"".join(events), split_bytes)]
    else:
        groups = [_cut(e, split_bytes) for e in events]
    pieces: list[tuple[bytes, float]] = [(SSE_HEAD, 0.0)]
    for group in groups:
        for j, part in enumerate(group):
            wait = delay if j == len(group) - 1 else gap
            pieces.append((http_chunk(part), wait))
    last, _ = pieces[-1]
    pieces[-1] = (last + LAST_CHUNK, 0.0)
    if delay <= 0 and split_bytes <= 0:
        return [(b"".join(p for p, _ in pieces), 0.0)]
    return pieces


def _cut(data: bytes, k: int) -> list[bytes]:
    """Cut ``data`` into pieces of cycling sizes (k, 1, k/3, 2k+1): lands mid-line and mid-char."""
    sizes = itertools.cycle((k, 1, max(1, k // 3), 2 * k + 1))
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        size = next(sizes)
        out.append(data[pos : pos + size])
        pos += size
    return out


def full_body(r: Reply) -> bytes:
    """Non-streaming body, the shape of chat.json or completions.json."""
    text = "".join(token_text(i, r.unicode) for i in range(r.n))
    if r.chat:
        choice: dict[str, object] = {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": text,
                "refusal": None,
                "annotations": None,
                "audio": None,
                "function_call": None,
                "reasoning": None,
            },
            "logprobs": None,
            "finish_reason": r.finish,
            "stop_reason": None,
            "token_ids": None,
            "routed_experts": None,
        }
    else:
        choice = {
            "index": 0,
            "text": text,
            "logprobs": None,
            "finish_reason": r.finish,
            "stop_reason": None,
            "token_ids": None,
            "prompt_logprobs": None,
            "prompt_token_ids": None,
            "routed_experts": None,
        }
    usage: dict[str, object] = dict(_usage(r))
    usage.update(prompt_tokens_details=None, completion_tokens_details=None)
    body: dict[str, object] = {
        "id": _new_id(r.chat),
        "object": "chat.completion" if r.chat else "text_completion",
        "created": int(time.time()),
        "model": r.model,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": FINGERPRINT,
        "usage": usage,
    }
    if r.chat:
        body.update(prompt_logprobs=None, prompt_token_ids=None, prompt_text=None)
    body.update(kv_transfer_params=None, ec_transfer_params=None, metrics=None)
    return dumps(body)


def models_body(names: list[str], max_model_len: int) -> bytes:
    """``GET /v1/models``, the shape of models.json."""
    now = int(time.time())
    data = [
        {
            "id": name,
            "object": "model",
            "created": now,
            "owned_by": "vllm",
            "root": f"/models/{names[0]}",
            "parent": None,
            "max_model_len": max_model_len,
            "permission": [
                {
                    "id": "modelperm-b4ced1b158891469",
                    "object": "model_permission",
                    "created": now,
                    "allow_create_engine": False,
                    "allow_sampling": True,
                    "allow_logprobs": True,
                    "allow_search_indices": False,
                    "allow_view": True,
                    "allow_fine_tuning": False,
                    "organization": "*",
                    "group": None,
                    "is_blocking": False,
                }
            ],
        }
        for name in names
    ]
    return dumps({"object": "list", "data": data})
