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
from adapter.config import Settings, env_name

#: The flags, each a field of ``Settings``, and what it is; the help adds its environment
#: variable and its default from ``Settings`` itself, so the two cannot drift.
FLAGS = {
    "host": "listen address; 0.0.0.0 for every interface",
    "port": "listen port",
    "vllm_url": "vLLM base URL; several, comma-separated, each serving its own models",
    "vision_ollama_url": "an Ollama for the models vLLM does not serve: llava, embeddings",
    "model_aliases": "Ollama names for served models, NAME=SERVED,...",
    "model_capabilities": "capabilities to add to what vLLM showed, NAME=CAP,CAP;...",
    "connect_timeout": "seconds to connect upstream",
    "request_timeout": "seconds to wait for upstream bytes",
    "models_cache_ttl": "seconds the model lists are cached",
    "max_connections": "upstream connection pool size",
    "log_level": "critical|error|warning|info|debug",
    "workers": "worker processes",
    "shutdown_grace": "seconds open requests may take to finish on SIGTERM",
    "worker_timeout": "seconds a worker's loop may stay blocked before it is replaced",
    "ollama_version": "version reported by /api/version",
}


def _help(field: str, text: str) -> str:
    info = Settings.model_fields[field]
    default = info.get_default(call_default_factory=True)
    said = f", default {default}" if default not in (None, "", (), {}) else ""
    return f"{text} ({env_name(info)}{said})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vllm-adapter",
        description="Serve Ollama's REST API in front of a vLLM OpenAI-compatible server. "
        "Every flag has an environment variable; the flag wins.",
    )
    for field, text in FLAGS.items():
        p.add_argument("--" + field.replace("_", "-"), help=_help(field, text))
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
            name = Settings.env_names().get(field, field)
            problems.append(f"{name}: {err['msg']}")
        sys.stderr.write(f"vllm-adapter: invalid configuration: {'; '.join(problems)}\n")
        raise SystemExit(2) from None


#: Settings that are never put back into the environment (they have no flag).
SECRETS = frozenset({"vllm_api_key", "api_keys"})


def export_settings(settings: Settings) -> None:
    """Put the resolved settings into the environment, for worker processes to read."""
    for field, env in Settings.env_names().items():
        value = getattr(settings, field)
        if value is None or field in SECRETS:
            continue  # secrets come from the environment only: the workers inherit them
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
