"""Models as Ollama clients see them: names, the entry the router hands out, and Ollama's
model-description shapes (``/api/tags``, ``/api/ps``, ``/api/show``) built from an entry."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from adapter.ollama_api.modelfile import Derived, parameters_text, render

#: Capabilities Ollama knows, in the order it lists them.
CAPABILITY_ORDER = ("completion", "tools", "insert", "vision", "embedding", "thinking")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model as Ollama clients see it, and where it really lives."""

    name: str
    """Display name with a tag, as ``/api/tags`` lists it (``llama3.2:latest``)."""
    served: str
    """The name the backend knows it by (vLLM's served model name)."""
    backend: str = "vllm"
    """The name of the backend that serves it."""
    max_model_len: int | None = None
    root: str | None = None
    alias_of: str | None = None
    capabilities: tuple[str, ...] = field(default=("completion",))
    embedding_length: int | None = None
    """The length of its vectors, for an embedding model."""
    derived: Derived | None = None
    """Its Modelfile settings, for a model made from another (``/api/create``)."""
    info: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    """The backend's own description, when it has one (an Ollama ``/api/tags`` entry)."""

    @property
    def generates(self) -> bool:
        """Whether it answers chat and generate (an embedding model does not)."""
        return "completion" in self.capabilities

    @property
    def digest(self) -> str:
        """A stable fake digest: vLLM has none, and clients only compare them."""
        return hashlib.sha256(f"{self.backend}:{self.served}:{self.name}".encode()).hexdigest()


def normalize(name: str) -> str:
    """The lookup key of a model name: case-insensitive, ``:latest`` optional."""
    key = name.strip().lower()
    if key.endswith(":latest"):
        key = key[: -len(":latest")]
    return key


def display_name(name: str) -> str:
    """The name with a tag, as Ollama always shows it."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def ordered_capabilities(caps: set[str] | frozenset[str]) -> tuple[str, ...]:
    """Capabilities in Ollama's order."""
    return tuple(c for c in CAPABILITY_ORDER if c in caps)


class ModelDetails(TypedDict, total=False):
    parent_model: str
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str
    context_length: int
    embedding_length: int


class TagEntry(TypedDict):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails
    capabilities: list[str]


class PsEntry(TypedDict, total=False):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int
    context_length: int


class ShowResponse(TypedDict, total=False):
    license: str
    messages: list[dict[str, str]]
    modelfile: str
    parameters: str
    template: str
    system: str
    details: ModelDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


_FAMILIES = (
    ("qwen3", "qwen3"),
    ("qwen2", "qwen2"),
    ("qwen", "qwen2"),
    ("llama", "llama"),
    ("mistral", "llama"),
    ("mixtral", "llama"),
    ("gemma3", "gemma3"),
    ("gemma", "gemma"),
    ("phi3", "phi3"),
    ("phi", "phi3"),
    ("deepseek", "deepseek2"),
    ("gpt-oss", "gptoss"),
    ("granite", "granite"),
    ("nomic", "nomic-bert"),
    ("bert", "bert"),
    ("minilm", "bert"),
    ("mxbai", "bert"),
)
_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)


def family(entry: ModelEntry) -> str:
    """A best guess at the architecture name Ollama would report (``llama``, ``qwen2``, ...),
    from the names and the last part of the model's ``root`` (not the folders above it: a
    checkout called ``vllm-ollama-adapter`` would make every model a llama)."""
    root = (entry.root or "").rstrip("/").rsplit("/", 1)[-1]
    text = f"{entry.served} {entry.name} {root}".lower()
    for needle, fam in _FAMILIES:
        if needle in text:
            return fam
    return "llama"


def parameter_size(entry: ModelEntry) -> str:
    """``7B``-style size when the model name says it, else empty."""
    match = _SIZE.search(f"{entry.served} {entry.root or ''}")
    if not match:
        return ""
    return f"{match.group(1)}{match.group(2).upper()}"


def details(entry: ModelEntry) -> ModelDetails:
    """Ollama's ``details`` object."""
    fam = family(entry)
    out: ModelDetails = {
        "parent_model": entry.alias_of or "",
        "format": "safetensors",
        "family": fam,
        "families": [fam],
        "parameter_size": parameter_size(entry),
        "quantization_level": "",
    }
    if entry.max_model_len:
        out["context_length"] = entry.max_model_len
    if entry.embedding_length:  # Ollama 0.30.0: an embedding model's vector length
        out["embedding_length"] = entry.embedding_length
    return out


class Recommendation(TypedDict, total=False):
    model: str
    description: str
    context_length: int


def recommendation(entry: ModelEntry) -> Recommendation:
    """One entry of ``/api/experimental/model-recommendations``."""
    out: Recommendation = {"model": entry.name, "description": f"served by {entry.backend}"}
    if entry.max_model_len:
        out["context_length"] = entry.max_model_len
    return out


def timestamp(moment: datetime) -> str:
    """Local time with its offset, as Ollama writes ``modified_at`` and ``expires_at``."""
    return moment.astimezone().isoformat()


def tag_entry(entry: ModelEntry, modified_at: datetime) -> TagEntry:
    """One model of ``/api/tags``: ``name`` and ``model`` both carry the tag."""
    return {
        "name": entry.name,
        "model": entry.name,
        "modified_at": timestamp(modified_at),
        "size": 0,
        "digest": entry.digest,
        "details": details(entry),
        "capabilities": list(entry.capabilities),
    }


FAR_FUTURE = datetime(2318, 1, 1, tzinfo=UTC)


def ps_entry(entry: ModelEntry) -> PsEntry:
    """One model of ``/api/ps``: vLLM keeps every served model loaded, so none expires."""
    out: PsEntry = {
        "name": entry.name,
        "model": entry.name,
        "size": 0,
        "digest": entry.digest,
        "details": details(entry),
        "expires_at": timestamp(FAR_FUTURE),
        "size_vram": 0,
    }
    if entry.max_model_len:
        out["context_length"] = entry.max_model_len
    return out


#: What ``template`` says: the prompt goes to vLLM, which renders the model's own chat
#: template; a model that fills in the middle takes a suffix too (editors look for
#: ``.Suffix`` before they offer completion), and a thinking model thinks.
TEMPLATE = "{{ .Prompt }}"
INSERT_TEMPLATE = "{{ if .Suffix }}{{ .Prompt }}{{ .Suffix }}{{ else }}{{ .Prompt }}{{ end }}"
THINKING_TEMPLATE = "{{ if .Think }}{{ .Thinking }}{{ end }}"


def template(entry: ModelEntry) -> str:
    """The Go template ``/api/show`` reports for ``entry``."""
    text = INSERT_TEMPLATE if "insert" in entry.capabilities else TEMPLATE
    if "thinking" in entry.capabilities:
        text = THINKING_TEMPLATE + text
    return text


def show(
    entry: ModelEntry, modified_at: datetime, *, backend_url: str, basename: str | None = None
) -> ShowResponse:
    """``/api/show``: ``model_info`` always present, with ``<arch>.context_length`` (and
    ``embedding_length`` for an embedding model); ``basename`` replaces
    ``general.basename`` (Copilot shows that one: Ollama echoes the name asked for)."""
    fam = family(entry)
    info: dict[str, Any] = {
        "general.architecture": fam,
        "general.basename": basename or entry.served.rsplit("/", 1)[-1],
        "general.name": entry.served,
    }
    if entry.max_model_len:
        info[f"{fam}.context_length"] = entry.max_model_len
    if entry.embedding_length:
        info[f"{fam}.embedding_length"] = entry.embedding_length
    derived = entry.derived
    options: dict[str, Any] = dict(derived.options) if derived else {}
    if entry.max_model_len:
        options.setdefault("num_ctx", entry.max_model_len)
    header = (
        '# Modelfile generated by "ollama show"\n'
        f"# Served by vLLM at {backend_url} as {entry.served!r}; the chat template and\n"
        "# generation defaults are vLLM's (the model's tokenizer_config and generation_config).\n"
    )
    if derived is not None:
        modelfile = header + render(derived, entry.alias_of or entry.served)
    else:
        params = "".join(f"PARAMETER {k} {v}\n" for k, v in options.items())
        modelfile = header + f"FROM {entry.served}\n" + params
    out: ShowResponse = {
        "license": "\n".join(derived.license) if derived else "",
        "modelfile": modelfile,
        "parameters": parameters_text(options),
        "template": derived.template if derived and derived.template else template(entry),
        "details": details(entry),
        "model_info": info,
        "capabilities": list(entry.capabilities),
        "modified_at": timestamp(modified_at),
    }
    if derived is not None:
        if derived.system is not None:
            out["system"] = derived.system
        if derived.messages:
            out["messages"] = [{"role": r, "content": c} for r, c in derived.messages]
    return out
