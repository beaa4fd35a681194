"""What the routes see of a running app: the router, the settings, the metrics, the clock.

The routes reach backends only through the router, as the ``Backend`` protocol: which classes
serve is decided where the app is put together (``app.build_services``), and nothing here or
in ``adapter/api/`` imports one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from starlette.requests import Request

from adapter.backends.base import Backend
from adapter.clock import SYSTEM, Clock
from adapter.config import Settings
from adapter.metrics import Metrics
from adapter.ollama_api.models import ModelEntry
from adapter.router import Router


def _adapter_version() -> str:
    try:
        return package_version("vllm-ollama-adapter")
    except PackageNotFoundError:
        return "0.0.0+local"


@dataclass
class Services:
    """Created in the app's lifespan and closed with it."""

    settings: Settings
    metrics: Metrics
    router: Router
    clock: Clock = SYSTEM
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: str = field(default_factory=_adapter_version)
    #: ``/api/tags``'s body, the catalogue it was made from (the router hands out the same
    #: list until a backend's model list changes) and its head's fields, so an unchanged list
    #: is not serialised again.
    tags_body: tuple[list[ModelEntry], bytes, list[tuple[bytes, bytes]]] | None = None

    @property
    def backends(self) -> list[Backend]:
        """Every upstream server, in the router's order."""
        return self.router.backends

    async def aclose(self) -> None:
        await self.router.aclose()
        for backend in self.router.backends:
            await backend.aclose()


def services_of(request: Request) -> Services:
    """The services (created by the lifespan) of the app that serves ``request``."""
    services: Services = request.app.state.adapter
    return services
