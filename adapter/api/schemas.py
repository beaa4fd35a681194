"""Ollama's request objects as pydantic models: the one place that knows Ollama's field names.

Requests are validated on the way in; responses are built as plain dicts on the hot path
(see ``adapter.backends.vllm.translate``) and their field names are documented there.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

JSONValue = Any


class _Lenient(BaseModel):
    """Unknown keys are accepted and ignored, as Ollama ignores them."""

    model_config = ConfigDict(extra="ignore")


class ToolCallFunction(_Lenient):
    name: str = ""
    arguments: dict[str, Any] | str | None = None
    index: int | None = None


class ToolCall(_Lenient):
    id: str | None = None
    function: ToolCallFunction


class Message(_Lenient):
    role: str
    content: str | None = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None

    @field_validator("role")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class Tool(BaseModel):
    """An OpenAI-style function tool; kept whole so every JSON-Schema keyword reaches vLLM."""

    model_config = ConfigDict(extra="allow")

    type: str = "function"
    function: dict[str, Any]


class _GenerationRequest(_Lenient):
    model: str = ""
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    stream: bool | None = True
    keep_alive: float | str | None = None
    think: bool | str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    # Open WebUI sometimes sends num_predict at the top level instead of inside options.
    num_predict: int | None = None


class ChatRequest(_GenerationRequest):
    messages: list[Message] | None = None
    tools: list[Tool] | None = None


class GenerateRequest(_GenerationRequest):
    prompt: str | None = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    images: list[str] | None = None
    context: list[int] | None = None
    raw: bool | None = False


class ShowRequest(_Lenient):
    model: str = ""
    name: str = ""
    verbose: bool | None = False


class EmbedRequest(_Lenient):
    model: str = ""
    input: str | list[str] | None = None
    truncate: bool | None = True
    dimensions: int | None = None
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


class EmbeddingsRequest(_Lenient):
    model: str = ""
    prompt: str | None = ""
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


class PullRequest(_Lenient):
    model: str = ""
    name: str = ""
    stream: bool | None = True
    insecure: bool | None = None


class ModelRequest(_Lenient):
    """Any request that names one model (delete, push)."""

    model: str = ""
    name: str = ""
    stream: bool | None = True


class CopyRequest(_Lenient):
    source: str = ""
    destination: str = ""


__all__ = [
    "ChatRequest",
    "CopyRequest",
    "EmbedRequest",
    "EmbeddingsRequest",
    "Field",
    "GenerateRequest",
    "Message",
    "ModelRequest",
    "PullRequest",
    "ShowRequest",
    "Tool",
    "ToolCall",
    "ToolCallFunction",
]
