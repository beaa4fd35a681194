"""What one running app holds: settings, metrics, backends and the router."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from adapter.backends.base import ModelEntry
from adapter.backends.ollama import OllamaBackend
from adapter.backends.vllm import VLLMBackend
from adapter.config import Settings
from adapter.metrics import Metrics
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
    vllm: list[VLLMBackend]
    ollama: OllamaBackend | None
    router: Router
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: str = field(default_factory=_adapter_version)
    #: ``/api/tags``'s body and the catalogue it was made from (the router hands out the same
    #: list until a backend's model list changes), so unchanged lists are not serialised again.
    tags_body: tuple[list[ModelEntry], bytes] | None = None

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        metrics = Metrics()
        vllm = [
            VLLMBackend("vllm" if i == 0 else f"vllm-{i + 1}", url, settings, metrics)
            for i, url in enumerate(settings.vllm_urls)
        ]
        ollama = None
        if settings.vision_ollama_url:
            ollama = OllamaBackend(settings.vision_ollama_url, settings, metrics)
        router = Router(
            vllm,
            ollama,
            settings.model_aliases,
            settings.model_capabilities,
            cache_ttl=settings.models_cache_ttl,
        )
        return cls(settings, metrics, vllm, ollama, router)

    def vllm_for(self, entry: ModelEntry) -> VLLMBackend | None:
        """The vLLM backend serving ``entry``, or None when the Ollama passthrough does."""
        return next((b for b in self.vllm if b.name == entry.backend), None)

    async def aclose(self) -> None:
        await self.router.aclose()
        for backend in self.vllm:
            await backend.aclose()
        if self.ollama is not None:
            await self.ollama.aclose()
