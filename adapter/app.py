"""``create_app(settings)``: the ASGI application with its lifespan, routes and error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from adapter.api.routes import router
from adapter.api.streaming import ClientDisconnected, error_response
from adapter.config import Settings
from adapter.errors import OllamaError
from adapter.middleware import MetricsMiddleware
from adapter.state import AppState

log = logging.getLogger("adapter")


def create_app(
    settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """Build the app; ``transport`` replaces the upstream network (tests only)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState.build(settings, transport=transport)
        app.state.adapter = state
        log.info("adapter ready, vLLM at %s", settings.vllm_url)
        try:
            yield
        finally:
            await state.aclose()

    app = FastAPI(
        title="vLLM Ollama adapter",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.include_router(router)
    app.add_middleware(MetricsMiddleware)
    app.add_exception_handler(OllamaError, _ollama_error)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnected, _disconnected)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
    return app


async def _ollama_error(request: Request, exc: OllamaError) -> Response:
    return error_response(exc.status, exc.message)


async def _disconnected(request: Request, exc: Exception) -> Response:
    state: AppState = request.app.state.adapter
    state.metrics.disconnects.inc()
    return error_response(499, "request canceled")


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    return error_response(400, "invalid request")


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    # Ollama (Gin) answers unknown routes and wrong methods in plain text.
    if exc.status_code == 404:
        return PlainTextResponse("404 page not found", status_code=404)
    if exc.status_code == 405:
        return PlainTextResponse("405 method not allowed", status_code=405)
    return error_response(exc.status_code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s: %r", request.method, request.url.path, exc, exc_info=exc)
    return error_response(500, f"internal error in the adapter: {type(exc).__name__}")


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and worker processes: settings from the environment."""
    return create_app(Settings())
