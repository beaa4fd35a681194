"""``create_app(settings)``: the ASGI application with its lifespan, routes and error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from adapter.api import embed, models, openai, routes
from adapter.api.streaming import ClientDisconnected, error_response, openai_error
from adapter.config import Settings
from adapter.errors import OllamaError
from adapter.middleware import MetricsMiddleware
from adapter.state import AppState

log = logging.getLogger("adapter")

# The origins Ollama always allows (its envconfig), beside those named in OLLAMA_ORIGINS.
LOCAL_ORIGINS = (
    r"(https?://(localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])(:\d+)?"
    r"|(app|file|tauri|vscode-webview|vscode-file)://.*)"
)
CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "User-Agent",
    "Accept",
    "X-Requested-With",
    "OpenAI-Beta",
    "x-stainless-arch",
    "x-stainless-async",
    "x-stainless-custom-poll-interval",
    "x-stainless-helper-method",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-poll-helper",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app: routes, middleware, error handlers; backends open in the lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState.build(settings)
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
    for module in (routes, models, embed, openai):
        app.include_router(module.router)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"] if "*" in settings.cors_origins else list(settings.cors_origins),
        allow_origin_regex=LOCAL_ORIGINS,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        allow_headers=CORS_HEADERS,
    )
    app.add_exception_handler(OllamaError, _ollama_error)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnected, _disconnected)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
    return app


async def _ollama_error(request: Request, exc: OllamaError) -> Response:
    if request.url.path.startswith("/v1/"):
        return openai_error(exc.status, exc.message)
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
