"""Settings: one object, read from the environment and overridden by command-line flags."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


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


class Settings(BaseSettings):
    """Everything the adapter can be told; each field names its environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, populate_by_name=True, extra="ignore"
    )

    host: str = Field("0.0.0.0", validation_alias=AliasChoices("host", "ADAPTER_HOST"))
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
    vision_ollama_url: str | None = Field(
        None, validation_alias=AliasChoices("vision_ollama_url", "VISION_OLLAMA_URL")
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
    ollama_version: str = Field(
        "0.12.11", validation_alias=AliasChoices("ollama_version", "ADAPTER_OLLAMA_VERSION")
    )

    @field_validator("vllm_url", "vision_ollama_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

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
