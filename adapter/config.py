"""Settings: one object, read from the environment and overridden by command-line flags."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
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


def _check_url(value: str) -> str:
    value = value.strip()
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https://, got {value!r}")
    return value.rstrip("/")


class Settings(BaseSettings):
    """Everything the adapter can be told; each field names its environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, populate_by_name=True, extra="ignore"
    )

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("host", "ADAPTER_HOST"))
    """Loopback by default, as Ollama (``OLLAMA_HOST``): a person running it gets no open,
    keyless port; the images, compose files and manifests set ``0.0.0.0`` themselves."""
    port: int = Field(11434, ge=1, le=65535, validation_alias=AliasChoices("port", "ADAPTER_PORT"))
    vllm_url: str = Field(
        "http://localhost:8000", validation_alias=AliasChoices("vllm_url", "VLLM_URL")
    )
    vllm_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("vllm_api_key", "VLLM_API_KEY")
    )
    model_aliases: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias=AliasChoices("model_aliases", "MODEL_ALIASES")
    )
    model_capabilities: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(
        default_factory=dict,
        validation_alias=AliasChoices("model_capabilities", "MODEL_CAPABILITIES"),
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias=AliasChoices("cors_origins", "OLLAMA_ORIGINS")
    )
    vision_ollama_url: str | None = Field(
        None, validation_alias=AliasChoices("vision_ollama_url", "VISION_OLLAMA_URL")
    )
    probe_capabilities: bool = Field(
        True,
        validation_alias=AliasChoices("probe_capabilities", "ADAPTER_PROBE_CAPABILITIES"),
    )
    connect_timeout: float = Field(
        5.0, gt=0, validation_alias=AliasChoices("connect_timeout", "ADAPTER_CONNECT_TIMEOUT")
    )
    request_timeout: float = Field(
        600.0, gt=0, validation_alias=AliasChoices("request_timeout", "ADAPTER_REQUEST_TIMEOUT")
    )
    models_cache_ttl: float = Field(
        10.0, ge=0, validation_alias=AliasChoices("models_cache_ttl", "ADAPTER_MODELS_CACHE_TTL")
    )
    max_connections: int = Field(
        1024, ge=1, validation_alias=AliasChoices("max_connections", "ADAPTER_MAX_CONNECTIONS")
    )
    log_level: LogLevel = Field(
        "info", validation_alias=AliasChoices("log_level", "ADAPTER_LOG_LEVEL")
    )
    workers: int = Field(1, ge=1, validation_alias=AliasChoices("workers", "ADAPTER_WORKERS"))
    models_dir: str | None = Field(
        None, validation_alias=AliasChoices("models_dir", "ADAPTER_MODELS_DIR")
    )
    """A folder of Modelfiles, one per derived model (``/api/create``, ``/api/copy``)."""
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(), validation_alias=AliasChoices("api_keys", "ADAPTER_API_KEY")
    )
    """Keys a client must send (``Authorization: Bearer``, or ``x-api-key`` on Anthropic's
    route), comma-separated; none: no key needed, as with Ollama."""
    open_paths: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("/health", "/ready", "/metrics"),
        validation_alias=AliasChoices("open_paths", "ADAPTER_OPEN_PATHS"),
    )
    """Paths answered without a key (``GET /`` always is)."""
    forward_headers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("x-session-id", "x-user-id"),
        validation_alias=AliasChoices("forward_headers", "ADAPTER_FORWARD_HEADERS"),
    )
    """Client headers passed to vLLM as they came (routers use them for prefix-aware routing)."""
    session_headers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("x-session-id", "x-openwebui-chat-id"),
        validation_alias=AliasChoices("session_headers", "ADAPTER_SESSION_HEADERS"),
    )
    """Client headers that name a conversation, in order: the first one a request carries goes
    to vLLM as ``X-Session-ID``, the key vLLM's router hashes a session on
    (``consistent_hash``). Open WebUI names its chats in ``X-OpenWebUI-Chat-Id``."""
    session_from_chat: bool = Field(
        True, validation_alias=AliasChoices("session_from_chat", "ADAPTER_SESSION_FROM_CHAT")
    )
    """A chat whose client names no session goes to vLLM with ``X-Session-ID`` made from the
    conversation's opening (``requests.conversation_key``): Ollama's clients send no session
    id, and vLLM's router then keeps each conversation on one replica (docs/performance.md,
    "Sessions and replicas")."""
    log_format: LogFormat = Field(
        "text", validation_alias=AliasChoices("log_format", "ADAPTER_LOG_FORMAT")
    )
    access_log: bool = Field(
        True, validation_alias=AliasChoices("access_log", "ADAPTER_ACCESS_LOG")
    )
    log_bodies: bool = Field(
        False, validation_alias=AliasChoices("log_bodies", "ADAPTER_LOG_BODIES")
    )
    """Debugging only: log request bodies (prompts) at debug level. Off: never."""
    max_body_bytes: int = Field(
        128 * 1024 * 1024,
        ge=1024,
        validation_alias=AliasChoices("max_body_bytes", "ADAPTER_MAX_BODY_BYTES"),
    )
    max_images: int = Field(
        64, ge=0, validation_alias=AliasChoices("max_images", "ADAPTER_MAX_IMAGES")
    )
    max_messages: int = Field(
        2048, ge=1, validation_alias=AliasChoices("max_messages", "ADAPTER_MAX_MESSAGES")
    )
    max_concurrent: int = Field(
        512, ge=1, validation_alias=AliasChoices("max_concurrent", "ADAPTER_MAX_CONCURRENT")
    )
    """Requests sent to one upstream server at once, for the whole adapter (split over the
    workers); well above vLLM's own batch, so its scheduler decides, never the adapter."""
    max_queue: int = Field(
        512, ge=0, validation_alias=AliasChoices("max_queue", "ADAPTER_MAX_QUEUE")
    )
    """Requests waiting for one of those turns; past it, Ollama's 503."""
    answer_room: int = Field(
        0, ge=0, validation_alias=AliasChoices("answer_room", "ADAPTER_ANSWER_ROOM")
    )
    """Tokens kept free for the answer when a chat history is cut to fit the context; 0:
    ``num_predict`` when the request sets it, else a quarter of the context (at most 1024)."""
    sampling_defaults: SamplingDefaults = Field(
        "ollama",
        validation_alias=AliasChoices("sampling_defaults", "ADAPTER_SAMPLING_DEFAULTS"),
    )
    """``ollama``: options a request (or derived model) leaves unset are sent at Ollama's
    defaults (temperature 0.8, top_k 40, top_p 0.9, repeat_penalty 1.0), so services tuned on
    Ollama sample as before; ``model``: left to vLLM (the model's generation_config.json)."""
    collect_stream_interval: int = Field(
        64,
        ge=1,
        validation_alias=AliasChoices("collect_stream_interval", "ADAPTER_COLLECT_STREAM_INTERVAL"),
    )
    """For an answer collected whole (``stream: false``): vLLM's per-request
    ``stream_interval``, the tokens it sends in one event (its first and last at once); 1: not
    sent, one token an event as for a stream (for a vLLM older than 0.32, which ignores the
    field). Not with tools or a thinking model."""
    shutdown_grace: float = Field(
        30.0, ge=0, validation_alias=AliasChoices("shutdown_grace", "ADAPTER_SHUTDOWN_GRACE")
    )
    worker_timeout: float = Field(
        60.0, gt=0, validation_alias=AliasChoices("worker_timeout", "ADAPTER_WORKER_TIMEOUT")
    )
    ollama_version: str = Field(
        "0.22.0", validation_alias=AliasChoices("ollama_version", "ADAPTER_OLLAMA_VERSION")
    )

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
