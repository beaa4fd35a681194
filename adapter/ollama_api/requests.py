"""Ollama's request objects as pydantic models, as ollama-python's ``_types.py`` keeps them.

Requests are validated on the way in (unknown keys ignored, as Ollama ignores them); the
answers' shapes are in ``adapter.ollama_api.responses`` and ``adapter.ollama_api.models``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapter.ollama_api.models import display_name


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


class AboutAModel(_Lenient):
    """A request about one model: the name it gives (``target``), and what Ollama answers
    when it gives none (``UNNAMED``: each route has its own status and words) or one that is
    not served (``not_found``)."""

    UNNAMED: ClassVar[tuple[int, str]] = (400, "model is required")

    @property
    def target(self) -> str:
        """The model the request is about."""
        raise NotImplementedError

    @classmethod
    def not_found(cls, name: str) -> str:
        return f"model '{name}' not found"


class _GenerationRequest(AboutAModel):
    model: str = ""
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    stream: bool | None = True
    keep_alive: float | str | None = None
    #: A bool or a level; checked where it is used (Ollama's own messages for bad values).
    think: Any = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    # Open WebUI sometimes sends num_predict at the top level instead of inside options.
    num_predict: int | None = None
    #: Cut a prompt that outgrows the context, as Ollama does unless told ``false``: a chat's
    #: oldest messages first, then the prompt's tokens.
    truncate: bool | None = None

    @property
    def target(self) -> str:
        return self.model


class ChatRequest(_GenerationRequest):
    messages: list[Message] | None = None
    tools: list[Tool] | None = None


class GenerateRequest(_GenerationRequest):
    UNNAMED = (404, "model '' not found")

    prompt: str | None = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    images: list[str] | None = None
    context: list[int] | None = None
    raw: bool | None = False


class _EmbeddingRequest(AboutAModel):
    model: str = ""

    @property
    def target(self) -> str:
        return self.model

    @classmethod
    def not_found(cls, name: str) -> str:
        return f'model "{name}" not found, try pulling it first'


class EmbedRequest(_EmbeddingRequest):
    UNNAMED = (404, "model '' not found")

    input: str | list[str] | None = None
    truncate: bool | None = True
    dimensions: int | None = None
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


class EmbeddingsRequest(_EmbeddingRequest):
    prompt: str | None = ""
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None


class ModelRequest(AboutAModel):
    """A request that names one model (show, pull, delete, push); older clients send the
    deprecated ``name`` (ollama-js's delete does), which counts when ``model`` is empty."""

    model: str = ""
    name: str = ""
    stream: bool | None = True

    @property
    def target(self) -> str:
        """The model the request is about."""
        return self.model or self.name


class ShowRequest(ModelRequest):
    verbose: bool | None = False

    @classmethod
    def not_found(cls, name: str) -> str:
        return f"model '{display_name(name)}' not found"


class PullRequest(ModelRequest):
    UNNAMED = (400, "invalid model name")

    insecure: bool | None = None


class CreateRequest(ModelRequest):
    """``/api/create``: a model ``from`` another, with its own settings (or a ``modelfile``,
    as older clients send it)."""

    from_: str = Field("", alias="from")
    system: str | None = None
    template: str | None = None
    license: str | list[str] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    modelfile: str | None = None
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    quantize: str | None = None
    #: Ollama 0.30.0: a draft model for speculative decoding (refused: vLLM's is server-side).
    draft_files: dict[str, str] | None = None
    draft_quantize: str | None = None


class CopyRequest(AboutAModel):
    UNNAMED = (404, 'model "" not found')

    source: str = ""
    destination: str = ""

    @property
    def target(self) -> str:
        return self.source

    @classmethod
    def not_found(cls, name: str) -> str:
        return f'model "{name}" not found'


__all__ = [
    "AboutAModel",
    "ChatRequest",
    "CopyRequest",
    "CreateRequest",
    "EmbedRequest",
    "EmbeddingsRequest",
    "GenerateRequest",
    "Message",
    "ModelRequest",
    "PullRequest",
    "ShowRequest",
    "Tool",
    "ToolCall",
    "ToolCallFunction",
]
