"""vLLM's stream chunks as Ollama NDJSON lines, for one chat or generate request.

Every generated token passes through here: chunks are mapped with plain dict access and lines
are written from prebuilt byte fragments. The wall time and the counter come from a ``Clock``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import orjson

from adapter.backends.vllm.from_openai import (
    Timings,
    completion_logprobs_out,
    done_reason,
    logprobs_out,
    tool_calls_out,
)
from adapter.clock import Clock
from adapter.errors import OllamaError
from adapter.jsonutil import StrictJsonText, dumps
from adapter.ollama_api.responses import (
    ChatResponse,
    GenerateResponse,
    MessageOut,
    ToolCallOut,
    created_at,
    created_at_bytes,
)
from adapter.openai_api import error_message_of

_dumps = orjson.dumps
_CHAT_MID = b'","message":{"role":"assistant","content":'
_GEN_MID = b'","response":'
_NOT_DONE = b',"done":false}\n'
_CHAT_END = b"}" + _NOT_DONE


class StreamTranslator:
    """Turns vLLM stream chunks into Ollama's answer for one chat or generate request.

    One decoder (``feed``) reads every event, whatever becomes of it: finish reason, usage,
    token ids, tool-call fragments, the time of the first token, and the pieces (content,
    thinking, logprobs) it hands its sink. Streaming, the sink writes one NDJSON line per
    piece; with ``collect`` (a non-streaming request, which vLLM also streams so the time to
    the first token is known) it keeps them for ``answer()``. Tool calls are collected per
    index and sent once, complete, before the final line (clients append calls from every
    line); usage and timings go on the final line, or in the one object, both made by
    ``_closing``. With ``strict_json`` (``format`` was set) raw control characters inside the
    content's JSON strings are escaped as they pass.
    """

    __slots__ = (
        "_calls",
        "_chat",
        "_clock",
        "_collect",
        "_completions",
        "_context",
        "_end",
        "_head",
        "_json",
        "_logprobs",
        "_mid",
        "_now",
        "_prefix",
        "_texts",
        "_thoughts",
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
        clock: Clock,
        chat: bool,
        completions: bool = False,
        context: bool | list[int] = False,
        collect: bool = False,
        strict_json: bool = False,
    ) -> None:
        """``context``: collect the prompt's and the answer's token ids for the last line,
        starting from the given ids when it is a list (a prompt sent as token ids)."""
        self.model = model
        self.timings = timings
        self._clock = clock
        self._chat = chat
        self._completions = completions
        # ``created_at`` of the lines being made: the relay renews it once per network read
        # (lines read together were made together; a timestamp per token shows in profiles).
        self._prefix = b'{"model":' + _dumps(model) + b',"created_at":"'
        self._mid = _CHAT_MID if chat else _GEN_MID
        self.now = created_at_bytes(clock.wall_ns())
        self._calls: dict[int, list[Any]] = {}
        self._context: list[int] | None = (
            list(context) if isinstance(context, list) else [] if context else None
        )
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self._json = StrictJsonText() if strict_json else None
        self._collect = collect
        self._texts: list[str] = []
        self._thoughts: list[str] = []
        self._logprobs: list[dict[str, Any]] = []
        self._end = _CHAT_END if chat else _NOT_DONE

    @property
    def collecting(self) -> bool:
        """Whether the answer is kept for ``answer()`` instead of streamed."""
        return self._collect

    @property
    def now(self) -> bytes:
        """``created_at`` of the lines made from now on (its bytes, without quotes)."""
        return self._now

    @now.setter
    def now(self, value: bytes) -> None:
        self._now = value
        self._head = self._prefix + value + self._mid  # every content line starts so

    def feed(self, chunk: Mapping[str, Any]) -> bytes:
        """One decoded SSE event in; what the sink makes of its pieces out (a line, or
        nothing while collecting)."""
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
                self.timings.first = self._clock.perf_ns()
            return b""
        if self.timings.first == 0:
            self.timings.first = self._clock.perf_ns()
        if text and self._json is not None:
            text = self._json.feed(text)
        if self._collect:
            return self._keep(text, thinking, lp)
        if not thinking and not lp:  # the line sink's usual line, without a call per token
            return self._head + _dumps(text) + self._end
        return self._line(text, thinking, lp)

    def _line(self, text: str | None, thinking: str | None, lp: list[Any] | None) -> bytes:
        """The streaming sink: one NDJSON line (``feed`` writes a text-only line itself)."""
        if not thinking and not lp:
            return self._head + _dumps(text) + self._end
        line = self._head + _dumps(text or "")
        if thinking:
            line += b',"thinking":' + _dumps(thinking)
        if self._chat:
            line += b"}"
        if lp:
            line += b',"logprobs":' + _dumps(lp)
        return line + _NOT_DONE

    def _keep(self, text: str | None, thinking: str | None, lp: list[Any] | None) -> bytes:
        """The collecting sink: the pieces kept for ``answer()``, nothing out."""
        if text:
            self._texts.append(text)
        if thinking:
            self._thoughts.append(thinking)
        if lp:
            self._logprobs.extend(lp)
        return b""

    @property
    def takes_plain_text(self) -> bool:
        """Whether ``collect`` can be given a plain text event as its text alone (``Events``
        with ``plain_text``): a chat being collected whose text is kept as it comes."""
        return self._collect and self._chat and not self._completions and not self._json

    def collect(self, events: Iterable[Mapping[str, Any] | str]) -> None:
        """``feed`` for the events of one read, in ``collect`` mode. A plain text event
        (``Events`` with ``plain_text`` gives one as its text alone: a content delta and
        nothing else) is what ``feed`` would keep of it, so it is kept here at once; every
        other event goes through ``feed``."""
        feed = self.feed
        append = self._texts.append
        timings = self.timings
        for chunk in events:
            if isinstance(chunk, str):
                if timings.first == 0:
                    timings.first = self._clock.perf_ns()
                append(chunk)
            else:
                feed(chunk)

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

    def _tool_calls(self) -> list[ToolCallOut]:
        calls = [
            {"id": cid, "function": {"name": name, "arguments": "".join(args)}}
            for cid, name, args in (self._calls[i] for i in sorted(self._calls))
        ]
        return tool_calls_out(calls, self._clock)

    def _closing(
        self,
        text: str,
        thinking: str,
        calls: list[ToolCallOut] | None,
        logprobs: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        """The ``done: true`` object both ways end with: the answer's last pieces (all of it
        for ``answer()``, none for a stream's last line), the done reason, the context, the
        counts and the durations."""
        self.timings.end = self._clock.perf_ns()
        out: dict[str, Any] = {"model": self.model, "created_at": created_at(self._clock.wall_ns())}
        if self._chat:
            message: MessageOut = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = calls
            out["message"] = message
        else:
            out["response"] = text
            if thinking:
                out["thinking"] = thinking
        out["done"] = True
        out["done_reason"] = done_reason(self.finish_reason)
        if self._context:
            out["context"] = self._context
        out.update(self.timings.metrics(self.usage))
        if logprobs:
            out["logprobs"] = logprobs
        return out

    def answer(self) -> ChatResponse | GenerateResponse:
        """The whole answer as one object (``collect``): what a non-streaming request gets."""
        calls = self._tool_calls() if self._calls else None
        out = self._closing("".join(self._texts), "".join(self._thoughts), calls, self._logprobs)
        return cast(ChatResponse | GenerateResponse, out)

    def final(self) -> bytes:
        """The collected tool calls (if any) and the ``done: true`` line with the metrics."""
        out = b""
        if self._calls:
            message = {"role": "assistant", "content": "", "tool_calls": self._tool_calls()}
            now = created_at(self._clock.wall_ns())
            line = {"model": self.model, "created_at": now, "message": message}
            out += dumps({**line, "done": False}) + b"\n"
        return out + _dumps(self._closing("", "", None, None)) + b"\n"
