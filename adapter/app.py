"""``create_app(settings)``: the ASGI application with its lifespan, routes and error handlers."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from adapter import logs
from adapter.api import anthropic, embed, manage, openai, routes
from adapter.api.answers import error_in_shape, error_response
from adapter.api.gate import Gate
from adapter.backends.base import Backend
from adapter.backends.ollama import OllamaBackend
from adapter.backends.vllm import VLLMBackend
from adapter.clock import SYSTEM, Clock
from adapter.config import Settings
from adapter.cors import CORSMiddleware, OriginPolicy
from adapter.errors import ClientDisconnected, OllamaError
from adapter.metrics import Metrics, worker_exited
from adapter.middleware import MetricsMiddleware, endpoint_label, observe
from adapter.modelstore import ModelStore
from adapter.requestctx import CURRENT, RequestInfo
from adapter.router import Router
from adapter.services import Services

log = logging.getLogger("adapter")


class AdapterApp(FastAPI):
    """The FastAPI app, with a fast lane for the generation endpoints and the model list.

    ``POST /api/chat`` and ``/api/generate`` carry nearly all the traffic, and clients poll
    ``GET /api/tags``; without an ``Origin`` header (no CORS to answer) they go straight to
    their endpoint functions, skipping the framework's middleware and routing layers (their
    share of a request's CPU: benchmarks/results/profile-full-c16-*). Errors,
    metrics and disconnects are handled the same way as on the full path.
    """

    #: ``(method, path)`` of the fast lane's routes, to their endpoint functions.
    fast_routes: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]]
    #: The paths the routes serve (the ``endpoint`` label of the metrics).
    known_paths: frozenset[str]
    #: Request ids, API keys, announced body sizes, access lines.
    gate: Gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)  # the lifespan
            return
        gate = self.gate
        info = gate.begin(scope)
        token = CURRENT.set(info)
        try:
            refusal = gate.refusal(scope, info)
            if refusal is not None:
                with observe(
                    self.state.adapter.metrics, endpoint_label(info.path, self.known_paths)
                ) as seen:
                    seen.status = refusal.status_code
                    await refusal(scope, receive, gate.sender(send, info))
                return
            endpoint = self.fast_routes.get((scope["method"], scope["path"]))
            if endpoint is not None and not info.origin:
                await self._fast(endpoint, scope, receive, send, info)
            else:
                await super().__call__(scope, receive, gate.sender(send, info))
        finally:
            gate.finish(info)
            CURRENT.reset(token)

    async def _fast(
        self,
        endpoint: Callable[[Request], Awaitable[Response]],
        scope: Scope,
        receive: Receive,
        send: Send,
        info: RequestInfo,
    ) -> None:
        scope["app"] = self
        request = Request(scope, receive)
        with observe(self.state.adapter.metrics, scope["path"]) as seen:
            try:
                response = await endpoint(request)
            except Exception as exc:
                response = await error_for(request, exc)
            # The gate's part, on the response itself (no wrapper around ``send``): a stream
            # notes its own first byte when its first chunk leaves.
            seen.status = info.status = response.status_code
            response.raw_headers.append(self.gate.id_header(info))
            info.first_byte = time.perf_counter()
            await response(scope, receive, send)


#: The endpoints on the fast lane (their methods and paths come from the route table).
FAST_ENDPOINTS = (routes.chat, routes.generate, manage.tags)


def build_services(settings: Settings, clock: Clock = SYSTEM) -> Services:
    """The composition root: one ``VLLMBackend`` per vLLM URL, the Vision Ollama's
    ``OllamaBackend`` when it is set, the router over them; the routes see only ``Services``."""
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
    return Services(settings, metrics, router, clock)


def create_app(settings: Settings | None = None, clock: Clock = SYSTEM) -> AdapterApp:
    """Build the app: routes, middleware, error handlers; backends open in the lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings, clock)
        app.state.adapter = services
        log.info("adapter ready, backends: %s", ", ".join(b.url for b in services.backends))
        try:
            yield
        finally:
            await services.aclose()
            worker_exited(os.getpid())

    app = AdapterApp(
        title="vLLM Ollama adapter",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    tables = [module.endpoints for module in (routes, manage, embed, openai, anthropic)]
    for table in tables:
        app.include_router(table)
    paths = [r for table in tables for r in table.routes if isinstance(r, APIRoute)]
    app.known_paths = frozenset(r.path for r in paths if "{" not in r.path)
    app.fast_routes = {
        (method, r.path): r.endpoint
        for r in paths
        if r.endpoint in FAST_ENDPOINTS
        for method in r.methods or ()
    }
    app.gate = Gate(settings)
    app.add_middleware(MetricsMiddleware, known=app.known_paths)
    app.add_middleware(CORSMiddleware, policy=OriginPolicy.ollama(settings.cors_origins))
    for kind in (OllamaError, ClientDisconnected, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, error_for)
    app.add_exception_handler(Exception, error_for)
    return app


async def error_for(request: Request, exc: Exception) -> Response:
    """Every error as Ollama answers it (OpenAI's shape under ``/v1``), never a traceback."""
    if isinstance(exc, OllamaError):
        return error_in_shape(request.url.path, exc.status, exc.message)
    if isinstance(exc, ClientDisconnected):
        services: Services = request.app.state.adapter
        services.metrics.disconnects.inc()
        return error_response(499, "request canceled")
    if isinstance(exc, RequestValidationError):
        return error_in_shape(request.url.path, 400, "invalid request")
    if isinstance(exc, StarletteHTTPException):
        # Ollama (Gin) answers unknown routes and wrong methods in plain text.
        if exc.status_code == 404:
            return PlainTextResponse("404 page not found", status_code=404)
        if exc.status_code == 405:
            return PlainTextResponse("405 method not allowed", status_code=405)
        return error_in_shape(request.url.path, exc.status_code, str(exc.detail))
    log.error("unexpected error on %s %s: %r", request.method, request.url.path, exc, exc_info=exc)
    return error_in_shape(
        request.url.path, 500, f"internal error in the adapter: {type(exc).__name__}"
    )


def app_from_env() -> AdapterApp:
    """Factory for ``uvicorn --factory`` and worker processes: settings from the environment."""
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return create_app(settings)
