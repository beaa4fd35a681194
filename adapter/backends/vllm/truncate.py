"""A request longer than the model's context, cut as Ollama cuts it.

A chat keeps its system messages and its newest messages, the oldest dropped (``chatPrompt``
in Ollama's ``server/prompt.go``), with room left for the answer; the cut is searched for with
vLLM's own token counts (``/tokenize``, asked through the ``Tokenize`` the caller passes). A
prompt that still does not fit (one long message, a long generate prompt) is cut as Ollama's
runner cuts it (``llm/llama_server.go``): its first tokens and its newest, sent as a token
prompt to ``/v1/completions``. No I/O of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger("adapter.vllm")

#: ``/tokenize`` of a body (a chat in its chat form, or a text prompt): its token ids.
Tokenize = Callable[[dict[str, Any]], Awaitable[list[int]]]


def answer_room(max_tokens: int | None, context: int, configured: int = 0) -> int:
    """Tokens to leave for the answer when a history is cut to fit ``context``: the setting
    when given, else ``num_predict`` (``max_tokens``) when the request sets it, else a quarter
    of the context, at most 1024; never more than half the context, so the history keeps at
    least the other half."""
    room = configured or max_tokens or min(context // 4, 1024)
    return max(1, min(room, context // 2))


def kept_messages(messages: Sequence[dict[str, Any]], cut: int) -> list[dict[str, Any]]:
    """Ollama's truncation (``chatPrompt``): the messages from ``cut`` on, with every system
    message before it kept in front."""
    return [m for m in messages[:cut] if m.get("role") == "system"] + list(messages[cut:])


def num_keep(options: Mapping[str, Any] | None) -> int:
    """Ollama's ``num_keep`` (default 4): the prompt's first tokens a cut keeps."""
    value = (options or {}).get("num_keep")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 4
    return value


def cut_prompt(tokens: Sequence[int], context: int, keep: int) -> list[int]:
    """A prompt longer than the context cut as Ollama's runner cuts it (``llm/llama_server.go``,
    context shift): the first ``keep`` tokens (one more for the start-of-text token) and the
    newest ones, to about half the context, which leaves the other half for the answer."""
    if len(tokens) < context:
        return list(tokens)
    keep = min(keep + 1, context - 1)
    limit = context - max((context - keep) // 2, 1)
    return [*tokens[:keep], *tokens[len(tokens) - (limit - keep) :]]


#: What a chat body holds that a ``/v1/completions`` body over the same prompt takes too.
_COMPLETIONS_FIELDS = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "stream_interval",
        "max_tokens",
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        "seed",
        "stop",
        "repetition_penalty",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
    }
)


def completions_over_tokens(
    chat: Mapping[str, Any], prompt: list[int], context: int
) -> dict[str, Any]:
    """A chat body's sampling as a ``/v1/completions`` body over an already templated token
    prompt (the completions endpoint's default of 16 tokens replaced by the room left)."""
    body = {k: v for k, v in chat.items() if k in _COMPLETIONS_FIELDS}
    body["prompt"] = prompt
    body["max_tokens"] = min(body.get("max_tokens") or context, context - len(prompt))
    return body


def tokenize_body(body: Mapping[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """``/tokenize`` of a chat as vLLM will template it: same tools, same template switches."""
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    out["add_generation_prompt"] = True
    for key in ("tools", "chat_template_kwargs"):
        if key in body:
            out[key] = body[key]
    return out


def runner_cut(
    body: Mapping[str, Any], tokens: Sequence[int], context: int, options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A prompt of ``tokens`` that does not fit ``context``, cut as Ollama's runner cuts it,
    as the ``/v1/completions`` body over the tokens kept, with ``body``'s sampling."""
    prompt = cut_prompt(tokens, context, num_keep(options))
    log.info("prompt longer than the context: %d of %d tokens kept", len(prompt), len(tokens))
    return completions_over_tokens(body, prompt, context)


async def fit_chat(
    body: dict[str, Any],
    context: int,
    tokenize: Tokenize,
    *,
    options: Mapping[str, Any] | None,
    room: int = 0,
) -> tuple[str, dict[str, Any]]:
    """The chat ``body`` cut to fit ``context`` as Ollama cuts it: the oldest messages dropped,
    the system messages and the latest message always kept, with room left for the answer
    (``room``: the ``ADAPTER_ANSWER_ROOM`` setting, 0 for the default). When even those do not
    fit, their prompt's tokens get the runner's cut, for ``/v1/completions``. Answers the path
    and body to send.

    The cut is searched for (binary search over where the kept part starts; each step one
    ``/tokenize`` of that chat in its chat form, images and tools included), instead of one
    count per message; a kept part never starts with a tool result whose call was cut.
    """
    messages: list[dict[str, Any]] = body["messages"]
    limit = context - answer_room(body.get("max_tokens"), context, room)

    async def count(cut: int) -> list[int]:
        return await tokenize(tokenize_body(body, kept_messages(messages, cut)))

    async def fits(cut: int) -> bool:
        return len(await count(cut)) <= limit

    last = len(messages) - 1
    if not await fits(last):
        # Even the system messages and the latest one do not fit: the runner's cut.
        return "/v1/completions", runner_cut(body, await count(last), context, options)
    low, high = 0, last  # the first cut that fits lies in [low, high]; ``high`` fits
    while low < high:
        middle = (low + high) // 2
        if await fits(middle):
            high = middle
        else:
            low = middle + 1
    cut = low
    while cut < last and messages[cut].get("role") == "tool":
        cut += 1
    kept = kept_messages(messages, cut)
    if cut:
        log.info(
            "chat history cut to fit %d tokens: %d of %d messages kept",
            limit,
            len(kept),
            len(messages),
        )
    return "/v1/chat/completions", {**body, "messages": kept}
