"""Per-reply checkers: each is an ``httpclient.Sink`` that verifies content and shape.

A checker records ``error`` (first problem, or None), ``chunks`` (content-bearing stream
events or lines), ``tokens`` (the server's own count: usage / eval_count) and ``t_first`` (time of
the first content-bearing event or line, or of the final one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.common import loads


@dataclass(frozen=True)
class Expect:
    """What every reply of a workload must contain."""

    model: str
    text: str | None  # None: real server, shape checks only
    tokens: int | None  # requested max tokens; None: upstream default
    finish: str | None  # "length" / "stop"; None: do not check
    prompt_tokens: int | None = None


class Checker:
    """Base: status/content-type check and newline splitting."""

    ctype = b""
    lines = True

    def __init__(self, expect: Expect) -> None:
        self.expect = expect
        self.error: str | None = None
        self.chunks = 0
        self.tokens = 0
        self.t_first: float | None = None
        self.partial = b""
        self.body: list[bytes] = []
        self.bad_status = 0

    def fail(self, msg: str) -> None:
        """Record the first problem."""
        if self.error is None:
            self.error = msg

    def start(self, status: int, head: bytes, now: float) -> None:
        if status != 200:
            self.bad_status = status  # keep the body for the error message
        elif self.ctype and b"content-type: " + self.ctype not in head:
            self.fail(f"content-type is not {self.ctype.decode()}")

    def feed(self, data: bytes, now: float) -> None:
        if self.error is not None:
            return
        if not self.lines or self.bad_status:
            self.body.append(data)
            return
        if self.partial:
            data = self.partial + data
        parts = data.split(b"\n")
        self.partial = parts.pop()
        try:
            for line in parts:
                if line:
                    self.line(line, now)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            self.fail(f"bad line {line[:120]!r}: {type(exc).__name__} {exc}")

    def end(self, now: float) -> None:
        if self.bad_status:
            body = b"".join(self.body)[:200].decode(errors="replace")
            self.fail(f"HTTP {self.bad_status}: {body}")
        if self.error is not None:
            return
        try:
            if self.lines:
                if self.partial:
                    self.fail(f"unterminated last line {self.partial[:80]!r}")
                    return
                self.finish(now)
            else:
                self.whole(loads(b"".join(self.body)), now)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            self.fail(f"bad reply: {type(exc).__name__} {exc}")

    def line(self, line: bytes, now: float) -> None:
        """One non-empty line of a stream."""

    def finish(self, now: float) -> None:
        """After the last line of a stream."""

    def whole(self, obj: Any, now: float) -> None:
        """The parsed body of a non-streaming reply."""

    def check_text(self, text: str, tokens: Any, reason: Any) -> None:
        """Reassembled text and the server's token count (exact unless a real server stopped)."""
        e = self.expect
        if not isinstance(tokens, int):
            self.fail(f"token count missing: {tokens!r}")
            return
        self.tokens = tokens
        if e.text is not None and text != e.text:
            self.fail(f"text differs: got {text[:60]!r}... ({len(text)} chars)")
        elif (
            e.tokens is not None
            and (e.text is not None or reason == "length")
            and tokens != e.tokens
        ):
            self.fail(f"token count {tokens} != {e.tokens}")


class OpenAIChatStream(Checker):
    """``POST /v1/chat/completions`` with ``stream: true`` and include_usage."""

    ctype = b"text/event-stream"

    def __init__(self, expect: Expect) -> None:
        super().__init__(expect)
        self.parts: list[str] = []
        self.events = 0
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False

    def line(self, line: bytes, now: float) -> None:
        if line[:1] == b":":
            return
        if line[:6] != b"data: ":
            raise ValueError("not a data line")
        if self.done:
            raise ValueError("event after [DONE]")
        payload = line[6:]
        if payload == b"[DONE]":
            self.done = True
            return
        obj = loads(payload)
        if "error" in obj:
            raise ValueError(f"error event {obj['error']}")
        if self.usage is not None:
            raise ValueError("event after the usage chunk")
        choices = obj["choices"]
        self.events += 1
        if not choices:
            self.usage = obj["usage"]
            return
        choice = choices[0]
        delta = choice["delta"]
        if self.events == 1:
            if delta.get("role") != "assistant":
                raise ValueError("first chunk has no assistant role")
            return
        if self.finish_reason is not None:
            raise ValueError("chunk after the finish chunk")
        content = delta.get("content")
        if content:
            self.parts.append(content)
            self.chunks += 1
        reason = choice.get("finish_reason")
        if reason is not None:
            self.finish_reason = reason
        if self.t_first is None and (content or reason is not None):
            self.t_first = now

    def finish(self, now: float) -> None:
        e = self.expect
        if not self.done:
            self.fail("no [DONE]")
        elif self.finish_reason is None:
            self.fail("no finish_reason")
        elif e.finish is not None and self.finish_reason != e.finish:
            self.fail(f"finish_reason {self.finish_reason} != {e.finish}")
        elif self.usage is None:
            self.fail("no usage chunk")
        else:
            tokens = self.usage.get("completion_tokens")
            self.check_text("".join(self.parts), tokens, self.finish_reason)


class OpenAIChatFull(Checker):
    """``POST /v1/chat/completions`` non-streaming."""

    ctype = b"application/json"
    lines = False

    def whole(self, obj: Any, now: float) -> None:
        choice = obj["choices"][0]
        if choice["message"]["role"] != "assistant":
            self.fail("role is not assistant")
        elif self.expect.finish is not None and choice["finish_reason"] != self.expect.finish:
            self.fail(f"finish_reason {choice['finish_reason']}")
        else:
            tokens = obj["usage"]["completion_tokens"]
            self.check_text(choice["message"]["content"], tokens, choice["finish_reason"])


def _models(expect: Expect) -> set[str]:
    return {expect.model, expect.model + ":latest"}


class OllamaChatStream(Checker):
    """``POST /api/chat`` streaming NDJSON."""

    ctype = b"application/x-ndjson"

    def __init__(self, expect: Expect) -> None:
        super().__init__(expect)
        self.names = _models(expect)
        self.parts: list[str] = []
        self.final: dict[str, Any] | None = None

    def line(self, line: bytes, now: float) -> None:
        if self.final is not None:
            raise ValueError("line after the done line")
        obj = loads(line)
        if "error" in obj:
            raise ValueError(f"error line {obj['error']}")
        msg = obj["message"]
        content = msg["content"]
        if msg["role"] != "assistant" or not isinstance(content, str):
            raise ValueError("message is not an assistant string")
        if obj["model"] not in self.names or not isinstance(obj["created_at"], str):
            raise ValueError("model or created_at wrong")
        done = obj["done"]
        if done is True:
            self.final = obj
        elif done is not False:
            raise ValueError("done is not a bool")
        if content:
            self.parts.append(content)
            if not done:
                self.chunks += 1
        if self.t_first is None and (content or done):
            self.t_first = now

    def finish(self, now: float) -> None:
        if self.final is None:
            self.fail("no done line")
            return
        check_final(self, self.final, "".join(self.parts))


def check_final(c: Checker, obj: dict[str, Any], text: str) -> None:
    """Ollama's final object: done_reason and counts, then the text."""
    e = c.expect
    reason = obj.get("done_reason")
    if e.finish is not None and reason != e.finish:
        c.fail(f"done_reason {reason!r} != {e.finish}")
        return
    for key in ("prompt_eval_count", "total_duration", "eval_duration"):
        if not isinstance(obj.get(key), int):
            c.fail(f"{key} missing")
            return
    if e.prompt_tokens is not None and obj["prompt_eval_count"] != e.prompt_tokens:
        c.fail(f"prompt_eval_count {obj['prompt_eval_count']} != {e.prompt_tokens}")
        return
    c.check_text(text, obj.get("eval_count"), reason)


class OllamaChatFull(Checker):
    """``POST /api/chat`` with ``stream: false``."""

    ctype = b"application/json"
    lines = False

    def whole(self, obj: Any, now: float) -> None:
        msg = obj["message"]
        if msg["role"] != "assistant" or obj["done"] is not True:
            self.fail("not a done assistant message")
        elif obj["model"] not in _models(self.expect):
            self.fail(f"model {obj['model']!r}")
        else:
            check_final(self, obj, msg["content"])


class OllamaTags(Checker):
    """``GET /api/tags``: the served model is listed with the fields clients use."""

    ctype = b"application/json"
    lines = False

    def whole(self, obj: Any, now: float) -> None:
        names = _models(self.expect)
        models = obj["models"]
        for m in models:
            if not all(k in m for k in ("name", "model", "modified_at", "size", "digest")):
                self.fail(f"tag entry lacks fields: {sorted(m)}")
                return
            if not isinstance(m.get("details"), dict):
                self.fail("tag entry without details")
                return
        if not any(m["model"] in names for m in models):
            self.fail(f"{self.expect.model} not in /api/tags")


class OpenAIModels(Checker):
    """``GET /v1/models``."""

    ctype = b"application/json"
    lines = False

    def whole(self, obj: Any, now: float) -> None:
        if not any(m["id"] == self.expect.model for m in obj["data"]):
            self.fail(f"{self.expect.model} not in /v1/models")


CHECKERS: dict[tuple[str, str, bool], type[Checker]] = {
    ("openai", "chat", True): OpenAIChatStream,
    ("openai", "chat", False): OpenAIChatFull,
    ("ollama", "chat", True): OllamaChatStream,
    ("ollama", "chat", False): OllamaChatFull,
    ("ollama", "tags", False): OllamaTags,
    ("openai", "tags", False): OpenAIModels,
}
