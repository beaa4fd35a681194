"""Settings: one object, read from the environment and overridden by command-line flags."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
LogFormat = Literal["text", "json"]
SamplingDefaults = Literal["ollama", "model"]


def _names(value: Any) -> Any:
    """A comma-separated list (an environment variable) as a tuple."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


def parse_aliases(raw: str) -> dict[str, str]:
    """Parse ``ollama-name=served-name`` pairs separated by commas."""
    aliases: dict[str, str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, target = item.partition("=")
        name, target = name.strip(), target.strip()
        if not sep or not name or not target:
            raise ValueError(f"expected NAME=SERVED_NAME pairs separated by commas, got {item!r}")
        aliases[name] = target
    return aliases


CAPABILITIES = frozenset({"completion", "tools", "insert", "vision", "embedding", "thinking"})


def parse_capabilities(raw: str) -> dict[str, tuple[str, ...]]:
    """Parse ``name=cap,cap;name=cap`` (capabilities Ollama knows) into a mapping."""
    out: dict[str, tuple[str, ...]] = {}
    for item in raw.split(";"):
        item = item.strip()
        if not item:
            continue
        name, sep, caps = item.partition("=")
        names = tuple(c.strip() for c in caps.split(",") if c.strip())
        unknown = [c for c in names if c not in CAPABILITIES]
        if not sep or not name.strip() or not names or unknown:
            raise ValueError(
                f"expected NAME=CAP,CAP;... with CAP in {sorted(CAPABILITIES)}, got {item!r}"
            )
        out[name.strip()] = names
    return out


def env(name: str, default: Any = PydanticUndefined, **constraints: Any) -> Any:
    """A setting read from the environment variable ``name``, and only from it: a field's
    own name (``port``) is taken by ``Settings(port=...)`` (the flags), never from the
    environment, where ``PORT`` or ``HOST`` may mean something else entirely."""
    return Field(default, validation_alias=name, **constraints)


def env_name(field: FieldInfo) -> str:
    """The environment variable a field of ``Settings`` is read from."""
    assert isinstance(field.validation_alias, str), "every setting is made by env()"
    return field.validation_alias


def _check_url(value: str) -> str:
    value = value.strip()
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https://, got {value!r}")
    return value.rstrip("/")


class Settings(BaseSettings):
    """Everything the adapter can be told; each field names its environment variable."""

    # Not populated by field name: pydantic-settings would then read ``PORT`` and ``HOST``
    # from the environment too. ``__init__`` takes the field names (the flags, the tests).
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    def __init__(self, **values: Any) -> None:
        fields = type(self).model_fields
        super().__init__(
            **{env_name(fields[k]) if k in fields else k: v for k, v in values.items()}
        )

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Each field's environment variable."""
        return {name: env_name(field) for name, field in cls.model_fields.items()}

    host: str = env("ADAPTER_HOST", "127.0.0.1")
    """Loopback by default, as Ollama (``OLLAMA_HOST``): a person running it gets no open,
    keyless port; the images, compose files and manifests set ``0.0.0.0`` themselves."""
    port: int = env("ADAPTER_PORT", 11434, ge=1, le=65535)
    vllm_url: str = env("VLLM_URL", "http://localhost:8000")
    vllm_api_key: SecretStr | None = env("VLLM_API_KEY", None)
    model_aliases: Annotated[dict[str, str], NoDecode] = env("MODEL_ALIASES", default_factory=dict)
    model_capabilities: Annotated[dict[str, tuple[str, ...]], NoDecode] = env(
        "MODEL_CAPABILITIES", default_factory=dict
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = env("OLLAMA_ORIGINS", default=())
    vision_ollama_url: str | None = env("VISION_OLLAMA_URL", None)
    probe_capabilities: bool = env("ADAPTER_PROBE_CAPABILITIES", True)
    connect_timeout: float = env("ADAPTER_CONNECT_TIMEOUT", 5.0, gt=0)
    request_timeout: float = env("ADAPTER_REQUEST_TIMEOUT", 600.0, gt=0)
    models_cache_ttl: float = env("ADAPTER_MODELS_CACHE_TTL", 10.0, ge=0)
    max_connections: int = env("ADAPTER_MAX_CONNECTIONS", 1024, ge=1)
    log_level: LogLevel = env("ADAPTER_LOG_LEVEL", "info")
    workers: int = env("ADAPTER_WORKERS", 1, ge=1)
    models_dir: str | None = env("ADAPTER_MODELS_DIR", None)
    """A folder of Modelfiles, one per derived model (``/api/create``, ``/api/copy``)."""
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = env("ADAPTER_API_KEY", default=())
    """Keys a client must send (``Authorization: Bearer``, or ``x-api-key`` on Anthropic's
    route), comma-separated; none: no key needed, as with Ollama."""
    open_paths: Annotated[tuple[str, ...], NoDecode] = env(
        "ADAPTER_OPEN_PATHS", default=("/health", "/ready", "/metrics")
    )
    """Paths answered without a key (``GET /`` always is)."""
    forward_headers: Annotated[tuple[str, ...], NoDecode] = env(
        "ADAPTER_FORWARD_HEADERS", default=("x-session-id", "x-user-id")
    )
    """Client headers passed to vLLM as they came (routers use them for prefix-aware routing)."""
    session_headers: Annotated[tuple[str, ...], NoDecode] = env(
        "ADAPTER_SESSION_HEADERS", default=("x-session-id", "x-openwebui-chat-id")
    )
    """Client headers that name a conversation, in order: the first one a request carries goes
    to vLLM as ``X-Session-ID``, the key vLLM's router hashes a session on
    (``consistent_hash``). Open WebUI names its chats in ``X-OpenWebUI-Chat-Id``."""
    session_from_chat: bool = env("ADAPTER_SESSION_FROM_CHAT", True)
    """A chat whose client names no session goes to vLLM with ``X-Session-ID`` made from the
    conversation's opening (``to_openai.conversation_key``): Ollama's clients send no session
    id, and vLLM's router then keeps each conversation on one replica (docs/performance.md,
    "Sessions and replicas")."""
    log_format: LogFormat = env("ADAPTER_LOG_FORMAT", "text")
    access_log: bool = env("ADAPTER_ACCESS_LOG", True)
    log_bodies: bool = env("ADAPTER_LOG_BODIES", False)
    """Debugging only: log request bodies (prompts) at debug level. Off: never."""
    max_body_bytes: int = env("ADAPTER_MAX_BODY_BYTES", 128 * 1024 * 1024, ge=1024)
    max_images: int = env("ADAPTER_MAX_IMAGES", 64, ge=0)
    max_messages: int = env("ADAPTER_MAX_MESSAGES", 2048, ge=1)
    max_concurrent: int = env("ADAPTER_MAX_CONCURRENT", 512, ge=1)
    """Requests sent to one upstream server at once, for the whole adapter (split over the
    workers); well above vLLM's own batch, so its scheduler decides, never the adapter."""
    max_queue: int = env("ADAPTER_MAX_QUEUE", 512, ge=0)
    """Requests waiting for one of those turns; past it, Ollama's 503."""
    answer_room: int = env("ADAPTER_ANSWER_ROOM", 0, ge=0)
    """Tokens kept free for the answer when a chat history is cut to fit the context; 0:
    ``num_predict`` when the request sets it, else a quarter of the context (at most 1024)."""
    sampling_defaults: SamplingDefaults = env("ADAPTER_SAMPLING_DEFAULTS", "ollama")
    """``ollama``: options a request (or derived model) leaves unset are sent at Ollama's
    defaults (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.0), so services tuned on
    Ollama sample as before; ``model``: left to vLLM (the model's generation_config.json)."""
    collect_stream_interval: int = env("ADAPTER_COLLECT_STREAM_INTERVAL", 64, ge=1)
    """For an answer collected whole (``stream: false``): vLLM's per-request
    ``stream_interval``, the tokens it sends in one event (its first and last at once); 1: not
    sent, one token an event as for a stream (for a vLLM older than 0.32, which ignores the
    field). Not with tools or a thinking model."""
    shutdown_grace: float = env("ADAPTER_SHUTDOWN_GRACE", 30.0, ge=0)
    worker_timeout: float = env("ADAPTER_WORKER_TIMEOUT", 60.0, gt=0)
    ollama_version: str = env("ADAPTER_OLLAMA_VERSION", "0.32.15")

    @field_validator("vllm_url")
    @classmethod
    def _check_vllm_urls(cls, value: str) -> str:
        urls = [_check_url(u) for u in value.split(",") if u.strip()]
        if not urls:
            raise ValueError("at least one vLLM URL is needed")
        return ",".join(urls)

    @field_validator("vision_ollama_url")
    @classmethod
    def _check_optional_url(cls, value: str | None) -> str | None:
        return _check_url(value) if value else None

    @field_validator("model_capabilities", mode="before")
    @classmethod
    def _parse_capabilities(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_capabilities(value)
        return value

    @field_validator("api_keys", "open_paths", "forward_headers", "session_headers", mode="before")
    @classmethod
    def _parse_names(cls, value: Any) -> Any:
        return _names(value)

    @field_validator("forward_headers", "session_headers")
    @classmethod
    def _lower_headers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.lower() for v in value)

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(o.strip() for o in value.split(",") if o.strip())
        return value

    def per_worker(self, value: int) -> int:
        """A limit for the whole adapter as each worker holds it (connections spread evenly
        over the workers' sockets)."""
        return max(1, -(-value // self.workers)) if value else 0

    @property
    def vllm_urls(self) -> list[str]:
        """Every vLLM server (e.g. one generating, one embedding), in lookup order."""
        return self.vllm_url.split(",")

    @field_validator("model_aliases", mode="before")
    @classmethod
    def _parse_aliases(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_aliases(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("ollama_version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"must be a plain X.Y.Z version, got {value!r}")
        return value
