"""Ollama's model-description shapes (tags, ps, show) built from the router's entries."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from adapter.backends.base import ModelEntry

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
)
_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)


def family(entry: ModelEntry) -> str:
    """A best guess at the architecture name Ollama would report (``llama``, ``qwen2``, ...)."""
    text = f"{entry.root or ''} {entry.served} {entry.name}".lower()
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


def details(entry: ModelEntry) -> dict[str, Any]:
    """Ollama's ``details`` object."""
    fam = family(entry)
    out: dict[str, Any] = {
        "parent_model": entry.alias_of or "",
        "format": "safetensors",
        "family": fam,
        "families": [fam],
        "parameter_size": parameter_size(entry),
        "quantization_level": "",
    }
    if entry.max_model_len:
        out["context_length"] = entry.max_model_len
    return out


def timestamp(moment: datetime) -> str:
    """Local time with its offset, as Ollama writes ``modified_at`` and ``expires_at``."""
    return moment.astimezone().isoformat()


def tag_entry(entry: ModelEntry, modified_at: datetime) -> dict[str, Any]:
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
