"""What one running app holds: settings, metrics, clock, backends and the router."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from starlette.requests import Request

from adapter.backends.base import Backend
from adapter.backends.ollama import OllamaBackend
from adapter.backends.vllm import VLLMBackend
from adapter.clock import SYSTEM, Clock
from adapter.config import Settings
from adapter.metrics import Metrics
from adapter.modelstore import ModelStore
from adapter.ollama_api.models import ModelEntry
from adapter.router import Router


def _adapter_version() -> str:
    try:
        return package_version("vllm-ollama-adapter")
    except PackageNotFoundError:
        return "0.0.0+local"


@dataclass
class AppState:
    """Created in the app's lifespan and closed with it."""

    settings: Settings
    metrics: Metrics
    backends: list[Backend]
    router: Router
    clock: Clock = SYSTEM
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: str = field(default_factory=_adapter_version)
    #: ``/api/tags``'s body, the catalogue it was made from (the router hands out the same
    #: list until a backend's model list changes) and its head's fields, so an unchanged list
    #: is not serialised again.
    tags_body: tuple[list[ModelEntry], bytes, list[tuple[bytes, bytes]]] | None = None

    @classmethod
    def build(cls, settings: Settings, clock: Clock = SYSTEM) -> AppState:
        metrics = Metrics()
        backends: list[Backend] = [
            VLLMBackend("vllm" if i == 0 else f"vllm-{i + 1}", url, settings, metrics, clock)
            for i, url in enumerate(settings.vllm_urls)
        ]
        if settings.vision_ollama_url:
            backends.append(OllamaBackend(settings.vision_ollama_url, settings, metrics, clock))
        router = Router(
            backends,
            settings.model_aliases,
            settings.model_capabilities,
            cache_ttl=settings.models_cache_ttl,
            clock=clock,
            store=ModelStore(settings.models_dir),
        )
        return cls(settings, metrics, backends, router, clock)

    async def aclose(self) -> None:
        await self.router.aclose()
        for backend in self.backends:
            await backend.aclose()


def state_of(request: Request) -> AppState:
    """The app's state (created by the lifespan) that serves ``request``."""
    state: AppState = request.app.state.adapter
    return state
