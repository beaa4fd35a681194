"""The command line: ``vllm-adapter`` and ``python -m adapter`` start the server."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from adapter import logs
from adapter.config import Settings

_ENV_NAMES = {
    "host": "ADAPTER_HOST",
    "port": "ADAPTER_PORT",
    "vllm_url": "VLLM_URL",
    "vision_ollama_url": "VISION_OLLAMA_URL",
    "model_aliases": "MODEL_ALIASES",
    "model_capabilities": "MODEL_CAPABILITIES",
    "cors_origins": "OLLAMA_ORIGINS",
    "probe_capabilities": "ADAPTER_PROBE_CAPABILITIES",
    "connect_timeout": "ADAPTER_CONNECT_TIMEOUT",
    "request_timeout": "ADAPTER_REQUEST_TIMEOUT",
    "models_cache_ttl": "ADAPTER_MODELS_CACHE_TTL",
    "max_connections": "ADAPTER_MAX_CONNECTIONS",
    "log_level": "ADAPTER_LOG_LEVEL",
    "workers": "ADAPTER_WORKERS",
    "answer_room": "ADAPTER_ANSWER_ROOM",
    "sampling_defaults": "ADAPTER_SAMPLING_DEFAULTS",
    "collect_stream_interval": "ADAPTER_COLLECT_STREAM_INTERVAL",
    "max_concurrent": "ADAPTER_MAX_CONCURRENT",
    "open_paths": "ADAPTER_OPEN_PATHS",
    "forward_headers": "ADAPTER_FORWARD_HEADERS",
    "session_headers": "ADAPTER_SESSION_HEADERS",
    "session_from_chat": "ADAPTER_SESSION_FROM_CHAT",
    "log_format": "ADAPTER_LOG_FORMAT",
    "access_log": "ADAPTER_ACCESS_LOG",
    "log_bodies": "ADAPTER_LOG_BODIES",
    "max_body_bytes": "ADAPTER_MAX_BODY_BYTES",
    "max_images": "ADAPTER_MAX_IMAGES",
    "max_messages": "ADAPTER_MAX_MESSAGES",
    "max_queue": "ADAPTER_MAX_QUEUE",
    "models_dir": "ADAPTER_MODELS_DIR",
    "shutdown_grace": "ADAPTER_SHUTDOWN_GRACE",
    "worker_timeout": "ADAPTER_WORKER_TIMEOUT",
    "ollama_version": "ADAPTER_OLLAMA_VERSION",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vllm-adapter",
        description="Serve Ollama's REST API in front of a vLLM OpenAI-compatible server. "
        "Every flag has an environment variable; the flag wins.",
    )
    p.add_argument(
        "--host",
        help="listen address (ADAPTER_HOST, default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    p.add_argument("--port", help="listen port (ADAPTER_PORT, default 11434)")
    p.add_argument("--vllm-url", help="vLLM base URL (VLLM_URL, default http://localhost:8000)")
    p.add_argument("--vision-ollama-url", help="reserved: an Ollama for models vLLM does not serve")
    p.add_argument(
        "--model-aliases",
        help="Ollama names for served models, NAME=SERVED,... (MODEL_ALIASES)",
    )
    p.add_argument("--connect-timeout", help="seconds to connect upstream (default 5)")
    p.add_argument("--request-timeout", help="seconds to wait for upstream bytes (default 600)")
    p.add_argument("--models-cache-ttl", help="seconds /v1/models is cached (default 10)")
    p.add_argument("--max-connections", help="upstream connection pool size (default 1024)")
    p.add_argument("--log-level", help="critical|error|warning|info|debug (default info)")
    p.add_argument("--workers", help="worker processes (ADAPTER_WORKERS, default 1)")
    p.add_argument(
        "--shutdown-grace",
        help="seconds open requests may take to finish on SIGTERM (ADAPTER_SHUTDOWN_GRACE, 30)",
    )
    p.add_argument(
        "--worker-timeout",
        help="seconds a worker's loop may stay blocked before it is replaced (default 60)",
    )
    p.add_argument("--ollama-version", help="version reported by /api/version")
    return p


def load_settings(argv: Sequence[str] | None = None) -> Settings:
    """Settings from the environment, overridden by flags; a wrong value exits with one line."""
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            field = str(err["loc"][0]) if err["loc"] else "settings"
            name = _ENV_NAMES.get(field, field)
            problems.append(f"{name}: {err['msg']}")
        sys.stderr.write(f"vllm-adapter: invalid configuration: {'; '.join(problems)}\n")
        raise SystemExit(2) from None


def export_settings(settings: Settings) -> None:
    """Put the resolved settings into the environment, for worker processes to read."""
    for field, env in _ENV_NAMES.items():
        value = getattr(settings, field)
        if value is None:
            continue
        if field == "model_aliases":
            value = ",".join(f"{k}={v}" for k, v in value.items())
        elif field == "model_capabilities":
            value = ";".join(f"{k}={','.join(v)}" for k, v in value.items())
        elif field in ("cors_origins", "open_paths", "forward_headers", "session_headers"):
            value = ",".join(value)
        os.environ[env] = str(value)


def main(argv: Sequence[str] | None = None) -> None:
    settings = load_settings(argv)
    import uvicorn

    from adapter import supervisor
    from adapter.server import AdapterHttpProtocol, AdapterServer

    logs.configure(settings.log_level, settings.log_format)
    export_settings(settings)
    own_dir = None
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Workers share their metrics through files, so /metrics adds them all up; the
        # variable must be set before any worker imports prometheus_client.
        own_dir = tempfile.mkdtemp(prefix="vllm-adapter-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    options: dict[str, Any] = dict(
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=None,  # ours (adapter.logs): one format, request ids, JSON when asked
        access_log=False,  # the adapter writes its own access line (ADAPTER_ACCESS_LOG)
        server_header=False,  # Ollama (Go's net/http) names no server (uvicorn's default does)
        # Nothing here reads a request's client address or scheme, which is all uvicorn's
        # proxy-headers middleware rewrites (its cost: docs/performance.md, /api/tags).
        proxy_headers=False,
        loop="auto",
        http=AdapterHttpProtocol,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=settings.shutdown_grace,
        backlog=4096,
    )
    try:
        if settings.workers > 1 and supervisor.available():
            # One listening socket per worker, so connections are spread over all of them.
            config = uvicorn.Config("adapter.app:app_from_env", **options)
            grace, timeout = settings.shutdown_grace, settings.worker_timeout
            sys.exit(supervisor.run(config, grace=grace, worker_timeout=timeout))
        if settings.workers > 1:  # no supervisor on this platform: uvicorn's own
            uvicorn.run("adapter.app:app_from_env", **options)
            return
        server = AdapterServer(uvicorn.Config("adapter.app:app_from_env", **options))
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        if not server.started:
            sys.exit(supervisor.STARTUP_FAILURE)
    finally:
        if own_dir is not None:  # ours: no one else reads the files once the workers are gone
            shutil.rmtree(own_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
