"""What one running app holds: settings, metrics, backends and the router."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

import httpx

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
    vllm: VLLMBackend
    router: Router
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: str = field(default_factory=_adapter_version)

    @classmethod
    def build(
        cls, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> AppState:
        metrics = Metrics()
        vllm = VLLMBackend(settings, metrics, transport=transport)
        return cls(settings, metrics, vllm, Router(vllm, settings.model_aliases))

    async def aclose(self) -> None:
        await self.vllm.aclose()
