"""What every backend shares: the model entry the router hands out and the byte-stream shape."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model as Ollama clients see it, and where it really lives."""

    name: str
    """Display name with a tag, as ``/api/tags`` lists it (``llama3.2:latest``)."""
    served: str
    """The name the backend knows it by (vLLM's served model name)."""
    backend: str = "vllm"
    max_model_len: int | None = None
    root: str | None = None
    alias_of: str | None = None
    capabilities: tuple[str, ...] = field(default=("completion",))
    info: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    """The backend's own description, when it has one (an Ollama ``/api/tags`` entry)."""

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
