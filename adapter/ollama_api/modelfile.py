"""Ollama's Modelfiles: a model made from another with its own system prompt, default options and
leading messages (``FROM``, ``SYSTEM``, ``PARAMETER``, ``MESSAGE``, ``TEMPLATE``, ``LICENSE``).

``Derived`` is such a model as the adapter keeps it; ``parse`` reads Ollama's Modelfile syntax
(comments, ``"quoted"`` and ``\"\"\"multi-line\"\"\"`` values) and ``render`` writes it back, as
``ollama show --modelfile`` prints it. Pure: no files here (``adapter.modelstore`` keeps them).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapter.errors import OllamaError
from adapter.ollama_api.options import sampling_params

#: Ollama's options (api.Options and api.Runner) and the type of each.
INT_OPTIONS = frozenset(
    {
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "repeat_last_n",
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
        "draft_num_predict",
    }
)
FLOAT_OPTIONS = frozenset(
    {
        "top_p",
        "min_p",
        "typical_p",
        "temperature",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
    }
)
BOOL_OPTIONS = frozenset({"use_mmap"})
LIST_OPTIONS = frozenset({"stop"})
ROLES = ("system", "user", "assistant")
COMMANDS = frozenset(
    {"from", "system", "parameter", "message", "template", "license", "adapter", "requires"}
)


class ModelfileError(OllamaError):
    """A Modelfile (or create request) the adapter cannot take: 400 with what is wrong."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(400, f"(line {line}): {message}" if line else message)


@dataclass(frozen=True, slots=True)
class Derived:
    """A model made from ``base`` (a name the router resolves) with its own defaults."""

    name: str
    base: str
    system: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    messages: tuple[tuple[str, str], ...] = ()
    """Leading ``(role, content)`` messages, put before every chat's."""
    template: str | None = None
    """Kept and shown; vLLM renders with the model's own chat template."""
    license: tuple[str, ...] = ()

    def __hash__(self) -> int:
        return hash((self.name, self.base, self.system, self.messages))

    def lead(self, messages: list[Any]) -> list[Any]:
        """A chat's messages with this model's first, as Ollama applies a Modelfile: its
        ``MESSAGE`` lines, and its ``SYSTEM`` before them unless the chat brings its own. Any
        route's chat (Ollama's or OpenAI's messages) goes through here."""
        lead: list[Any] = [{"role": r, "content": c} for r, c in self.messages]
        first = messages[0] if messages else None
        if self.system and not (isinstance(first, dict) and first.get("role") == "system"):
            lead.insert(0, {"role": "system", "content": self.system})
        return lead + messages

    def with_name(self, name: str) -> Derived:
        return dataclasses.replace(self, name=name)

    def over(self, parent: Derived) -> Derived:
        """This model's settings on top of ``parent``'s (``FROM`` another derived model):
        its own base, its options over the parent's, its system and messages when it has
        them."""
        return Derived(
            self.name,
            parent.base,
            self.system if self.system is not None else parent.system,
            {**parent.options, **self.options},
            self.messages or parent.messages,
            self.template if self.template is not None else parent.template,
            self.license or parent.license,
        )


def option(name: str, value: Any) -> Any:
    """An option's value of the type Ollama gives it; Ollama's 400 for anything else."""
    if name in LIST_OPTIONS:
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise ModelfileError(f'parameter "{name}" must be a string or a list of strings')
        return [str(v) for v in values]
    text = value.strip() if isinstance(value, str) else value
    try:
        if name in INT_OPTIONS:
            if isinstance(text, bool):
                raise ValueError
            number = float(text) if isinstance(text, str) else text
            if not isinstance(number, int | float) or number != int(number):
                raise ValueError
            return int(number)
        if name in FLOAT_OPTIONS:
            if isinstance(text, bool):
                raise ValueError
            return float(text)
        if name in BOOL_OPTIONS:
            if isinstance(text, bool):
                return text
            if isinstance(text, str) and text.lower() in ("true", "false"):
                return text.lower() == "true"
            raise ValueError
    except (TypeError, ValueError):
        raise ModelfileError(f'invalid value for parameter "{name}": {value!r}') from None
    raise ModelfileError(f'unknown parameter "{name}"')


def options_of(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """``/api/create``'s ``parameters`` as typed options."""
    return {k: option(k, v) for k, v in (parameters or {}).items() if v is not None}


# --------------------------------------------------------------------------- the syntax

_NAME = re.compile(r"[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z0-9_]+")


def parse(text: str, name: str) -> Derived:
    """A Modelfile as a derived model called ``name``; ``ModelfileError`` with the line."""
    fields: dict[str, Any] = {"options": {}, "messages": [], "license": []}
    base: str | None = None
    pos, n = 0, len(text)
    while pos < n:
        ch = text[pos]
        if ch in " \t\r\n":
            pos += 1
            continue
        line = text.count("\n", 0, pos) + 1
        if ch == "#":
            end = text.find("\n", pos)
            pos = n if end < 0 else end + 1
            continue
        match = _NAME.match(text, pos)
        command = match.group(0).lower() if match else ""
        if (
            command not in COMMANDS
            or match is None
            or text[match.end() : match.end() + 1] not in " \t"
        ):
            raise ModelfileError(
                'command must be one of "from", "license", "template", "system", "adapter", '
                '"parameter", "message" or "requires"',
                line,
            )
        pos = _skip_spaces(text, match.end())
        key = None
        if command in ("parameter", "message"):
            word = _WORD.match(text, pos)
            if word is None:
                raise ModelfileError(f"{command.upper()} needs a name and a value", line)
            key, pos = word.group(0), _skip_spaces(text, word.end())
        value, pos = _value(text, pos, line)
        if command == "from":
            base = value
        elif command == "parameter":
            assert key is not None
            options = fields["options"]
            typed = option(key, value)
            options[key] = [*options.get(key, []), *typed] if key in LIST_OPTIONS else typed
        elif command == "message":
            if key not in ROLES:
                raise ModelfileError(
                    'message role must be one of "system", "user", or "assistant"', line
                )
            fields["messages"].append((key, value))
        elif command in ("system", "template"):
            fields[command] = value
        elif command == "license":
            fields["license"].append(value)
        elif command == "adapter":
            raise ModelfileError(unsupported("adapters"), line)
        # "requires" (the Ollama version a model needs) means nothing here: skipped.
    if not base:
        raise ModelfileError("no FROM line")
    return Derived(
        name,
        base,
        fields.get("system"),
        fields["options"],
        tuple(fields["messages"]),
        fields.get("template"),
        tuple(fields["license"]),
    )


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _value(text: str, pos: int, line: int) -> tuple[str, int]:
    """A command's value from ``pos``: triple-quoted (over several lines), quoted, or the
    rest of the line; and where the next command may start."""
    for quote in ('"""', '"'):
        if text.startswith(quote, pos):
            end = text.find(quote, pos + len(quote))
            if end < 0:
                raise ModelfileError(f"unterminated {quote} value", line)
            return text[pos + len(quote) : end], end + len(quote)
    end = text.find("\n", pos)
    end = len(text) if end < 0 else end
    value = text[pos:end].strip()
    if not value:
        raise ModelfileError("a command needs a value", line)
    return value, end


def _quoted(value: str) -> str:
    if "\n" in value or '"' in value or value != value.strip() or not value:
        return f'"""{value}"""'
    return value


def render(model: Derived, base: str | None = None) -> str:
    """The Modelfile of ``model`` (``FROM base``, its name the router resolved, when given)."""
    lines = [f"FROM {base or model.base}"]
    if model.template is not None:
        lines.append(f"TEMPLATE {_quoted(model.template)}")
    if model.system is not None:
        lines.append(f"SYSTEM {_quoted(model.system)}")
    for key, value in model.options.items():
        for v in value if isinstance(value, list) else [value]:
            text = ("true" if v else "false") if isinstance(v, bool) else str(v)
            lines.append(f"PARAMETER {key} {_quoted(text)}")
    lines.extend(f"MESSAGE {role} {_quoted(content)}" for role, content in model.messages)
    lines.extend(f"LICENSE {_quoted(text)}" for text in model.license)
    return "\n".join(lines) + "\n"


def parameters_text(options: Mapping[str, Any]) -> str:
    """``/api/show``'s ``parameters``: one option a line, its name padded as Ollama pads it,
    strings quoted, each stop string on a line of its own."""
    lines = []
    for key, value in options.items():
        for v in value if isinstance(value, list) else [value]:
            shown = f'"{v}"' if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else v
            lines.append(f"{key:<30} {shown}")
    return "\n".join(lines)


def unsupported(what: str) -> str:
    """Why ``/api/create`` cannot honour ``what`` here."""
    return {
        "files": "creating a model from weight files is not supported: vLLM loads the weights "
        "it was started with (--model); make a derived model FROM a model it serves",
        "adapters": "LoRA adapters are not supported here: serve them with vLLM "
        "(--enable-lora --lora-modules) and use their names",
        "quantize": "quantize is not supported: vLLM serves its weights as it was started "
        "(--quantization)",
        "draft_files": "a draft model is not supported here: vLLM drafts with the model it was "
        "started with (--speculative-config)",
        "draft_quantize": "a draft model is not supported here: vLLM drafts with the model it "
        "was started with (--speculative-config)",
    }[what]


def messages_of(items: Sequence[Mapping[str, Any]] | None) -> tuple[tuple[str, str], ...]:
    """``/api/create``'s ``messages`` as ``(role, content)`` pairs."""
    out = []
    for item in items or ():
        role = str(item.get("role") or "")
        if role not in ROLES:
            raise ModelfileError('message role must be one of "system", "user", or "assistant"')
        out.append((role, str(item.get("content") or "")))
    return tuple(out)


def merged_options(
    options: Mapping[str, Any] | None,
    derived: Derived | None,
    *,
    top_level: bool = False,
    defaults: Mapping[str, Any] | None = None,
) -> Mapping[str, Any] | None:
    """A request's options over a derived model's (its ``PARAMETER`` lines), over
    ``defaults`` (Ollama's sampling, ``options.OLLAMA_SAMPLING``); a ``num_predict`` the request
    gives at the top level wins over the model's too. An option set to ``null`` counts as
    unset."""
    if (derived is None or not derived.options) and not defaults:
        return options
    merged = dict(defaults or {})
    if derived is not None:
        merged.update(derived.options)
    if top_level:
        merged.pop("num_predict", None)
    merged.update((k, v) for k, v in (options or {}).items() if v is not None)
    return merged


def openai_defaults(
    body: dict[str, Any],
    derived: Derived | None,
    *,
    max_model_len: int | None = None,
    sampling: Mapping[str, Any] | None = None,
) -> None:
    """A derived model applied to an OpenAI body (``/v1/chat/completions``,
    ``/v1/completions``), as Ollama applies a Modelfile there too: its options, over
    ``sampling`` (Ollama's options, ``options.OPENAI_SAMPLING``), for every field the body
    leaves unset (or ``null``); its system prompt and messages before a chat's."""
    for key, value in sampling_params(
        merged_options(None, derived, defaults=sampling), max_model_len=max_model_len
    ).items():
        if body.get(key) is None:
            body[key] = value
    messages = body.get("messages")
    if derived is not None and isinstance(messages, list):
        body["messages"] = derived.lead(messages)
