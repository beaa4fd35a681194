"""The one error type: an HTTP status and a message, rendered as Ollama's ``{"error": "..."}``."""

from __future__ import annotations


class OllamaError(Exception):
    """An error answered to the client with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return f"OllamaError({self.status}, {self.message!r})"


class UpstreamUnavailable(OllamaError):
    """The upstream server could not be reached or did not answer in time."""


class ContextOverflow(OllamaError):
    """The prompt does not fit the model's context window (vLLM's 400)."""


class ClientDisconnected(Exception):
    """The client went away before its answer was ready."""
