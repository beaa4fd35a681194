"""Start and stop the real vLLM OpenAI server on CPU (scripts/serve-vllm-cpu.sh) for tests.

Stdlib only, so benchmarks and scripts can use it too::

    from tests.support.vllm_cpu import running_server

    with running_server() as url:          # e.g. "http://127.0.0.1:41234"
        ...                                # serves "tiny-llm"

    with running_server("embed") as url:   # serves "all-minilm" (/v1/embeddings)
        ...

Kinds of server (each has an environment variable naming an already running server to use
instead of starting one; then nothing is started or stopped):

- ``"chat"`` (``VLLM_TEST_URL``): the tiny Llama as ``tiny-llm``, max_model_len 512, hermes
  tool parser, xgrammar structured outputs.
- ``"reasoning"`` (``VLLM_TEST_REASONING_URL``): its twin whose chat template toggles thinking
  (Qwen3 style), served as ``tiny-think`` with ``--reasoning-parser qwen3``. With a random model
  all output of a thinking request lands in ``reasoning``; requests with
  ``chat_template_kwargs: {"enable_thinking": false}`` get ``content``.
- ``"embed"`` (``VLLM_TEST_EMBED_URL``): all-MiniLM-L6-v2, a real embedding model (vLLM's
  pooling runner), served as ``all-minilm``, Ollama's library name for it.
- ``"smollm2"`` (``VLLM_TEST_SMOLLM2_URL``): SmolLM2-135M-Instruct, a real chat model whose
  answers can be wrong, served as ``smollm2:135m`` (max_model_len 2048).
- ``"smollm2-replica"`` (``VLLM_TEST_SMOLLM2_REPLICA_URL``): a second copy of it, the other
  replica behind vLLM's router.

The two real models are prepared from PyPI wheels by scripts/prepare-models.sh; the random
tiny ones stay for what they serve best: fast shape tests with exact counts, and a chat
template that toggles thinking (no real model small enough has one).

The venv and the tiny model are created on first use by scripts/setup-vllm-cpu.sh (a no-op
when they exist). Server logs go to ``.cache/logs/``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.support.net import free_port

ServerKind = Literal["chat", "reasoning", "embed", "smollm2", "smollm2-replica"]

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup-vllm-cpu.sh"
MODELS_SCRIPT = REPO_ROOT / "scripts" / "prepare-models.sh"
MODELS_DIR = REPO_ROOT / ".cache" / "models"
SERVE_SCRIPT = REPO_ROOT / "scripts" / "serve-vllm-cpu.sh"
LOG_DIR = REPO_ROOT / ".cache" / "logs"

URL_ENV: dict[ServerKind, str] = {
    "chat": "VLLM_TEST_URL",
    "reasoning": "VLLM_TEST_REASONING_URL",
    "embed": "VLLM_TEST_EMBED_URL",
    "smollm2": "VLLM_TEST_SMOLLM2_URL",
    "smollm2-replica": "VLLM_TEST_SMOLLM2_REPLICA_URL",
}
SERVED_NAME: dict[ServerKind, str] = {
    "chat": "tiny-llm",
    "reasoning": "tiny-think",
    "embed": "all-minilm",
    "smollm2": "smollm2:135m",
    "smollm2-replica": "smollm2:135m",
}
KIND_ENV: dict[ServerKind, dict[str, str]] = {
    "chat": {},
    "reasoning": {
        "VLLM_REASONING_PARSER": "qwen3",
        "VLLM_MODEL": str(REPO_ROOT / ".cache" / "models" / "tiny-think"),
        # Room for Anthropic's smallest thinking budget (1024 tokens) below max_tokens.
        "VLLM_MAX_MODEL_LEN": "2048",
    },
    # The real models (scripts/prepare-models.sh), under Ollama's library names. 2048 tokens
    # of context keeps a test's over-long history cheap to evaluate on two cores.
    "embed": {
        "VLLM_MODEL": str(MODELS_DIR / "all-minilm"),
        "VLLM_RUNNER": "pooling",
        "VLLM_MAX_MODEL_LEN": "256",
    },
    "smollm2": {"VLLM_MODEL": str(MODELS_DIR / "smollm2-135m"), "VLLM_MAX_MODEL_LEN": "2048"},
}
# A second replica of the same model, as several GPUs each serving one copy would be: the
# replica tests put vLLM's router in front of both (tests/integration/test_replicas.py).
KIND_ENV["smollm2-replica"] = KIND_ENV["smollm2"]

DEFAULT_STARTUP_TIMEOUT = float(os.environ.get("VLLM_STARTUP_TIMEOUT", "300"))


class VllmStartError(RuntimeError):
    """The server did not become healthy; the message ends with the log's last lines."""


@dataclass
class VllmServer:
    """A vLLM server this process started (``process`` set) or was pointed at (``None``)."""

    base_url: str
    served_model_name: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    startup_seconds: float | None = None
    _stopped: bool = field(default=False, repr=False)
    _launched_at: float = field(default_factory=time.monotonic, repr=False)

    def wait_ready(self, timeout: float = DEFAULT_STARTUP_TIMEOUT) -> None:
        """Wait for ``GET /health`` 200; on failure stop the server and raise."""
        if self.startup_seconds is not None:
            return
        try:
            wait_healthy(self.base_url, timeout, process=self.process, log_path=self.log_path)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - self._launched_at

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines) if self.log_path else ""

    def kill(self) -> None:
        """SIGKILL the server's process group at once, as a crash would end it."""
        if self.process is None or self._stopped:
            return
        self._stopped = True
        kill_group(self.process)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the server's process group, then SIGKILL it after ``timeout`` seconds."""
        if self.process is None or self._stopped:
            return
        self._stopped = True
        terminate_group(self.process, timeout)


def ensure_setup() -> None:
    """Create the vLLM venv, the tiny models and the real ones if missing (quick no-op
    otherwise)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / "setup-vllm-cpu.log"
    for script in (SETUP_SCRIPT, MODELS_SCRIPT):
        with log_path.open("ab") as log:
            result = subprocess.run(
                ["bash", str(script)],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if result.returncode != 0:
            raise VllmStartError(
                f"{script} failed with exit code {result.returncode}; "
                f"last lines of {log_path}:\n{_tail(log_path, 40)}"
            )


def launch_server(
    kind: ServerKind = "chat",
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    setup: bool = True,
) -> VllmServer:
    """Start scripts/serve-vllm-cpu.sh in its own session without waiting for it.

    Call :meth:`VllmServer.wait_ready` before use. Launching several servers first and then
    waiting for each overlaps their start-up (mostly single-threaded imports).
    """
    if setup:
        ensure_setup()
    port = port or free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"vllm-{kind}-{port}.log"
    child_env = dict(os.environ)
    child_env.update(KIND_ENV[kind])
    child_env.update(env or {})
    child_env["VLLM_PORT"] = str(port)
    child_env["SERVED_MODEL_NAME"] = (env or {}).get("SERVED_MODEL_NAME", SERVED_NAME[kind])
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", str(SERVE_SCRIPT)],
            cwd=REPO_ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    atexit.register(terminate_group, process, 10.0)
    return VllmServer(
        base_url=f"http://127.0.0.1:{port}",
        served_model_name=child_env["SERVED_MODEL_NAME"],
        process=process,
        log_path=log_path,
    )


def start_server(
    kind: ServerKind = "chat",
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    setup: bool = True,
) -> VllmServer:
    """Start scripts/serve-vllm-cpu.sh in its own session and wait for ``GET /health`` 200.

    ``env`` adds environment variables for the script (e.g. ``VLLM_EXTRA_ARGS``,
    ``VLLM_MAX_NUM_SEQS``). Raises :class:`VllmStartError` with the log's last lines when the
    server exits or is not healthy within ``startup_timeout`` seconds.
    """
    server = launch_server(kind, port=port, env=env, setup=setup)
    server.wait_ready(startup_timeout)
    return server


def wait_healthy(
    base_url: str,
    timeout: float,
    *,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``GET {base_url}/health`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise VllmStartError(
                f"vLLM server exited with code {process.returncode} before it was healthy; "
                f"last lines of {log_path}:\n{_tail(log_path, 40)}"
            )
        if health_ok(base_url):
            return
        if time.monotonic() > deadline:
            raise VllmStartError(
                f"vLLM server at {base_url} not healthy after {timeout:.0f} s; "
                f"last lines of {log_path}:\n{_tail(log_path, 40)}"
            )
        time.sleep(0.25)


def external_url(kind: ServerKind = "chat") -> str | None:
    """The already running server named by the kind's environment variable, if any."""
    value = os.environ.get(URL_ENV[kind], "").strip()
    return value.rstrip("/").removesuffix("/v1") or None


@contextlib.contextmanager
def running_server(
    kind: ServerKind = "chat",
    *,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    launched: VllmServer | None = None,
) -> Iterator[str]:
    """Yield the base URL (no trailing slash, no ``/v1``) of a running server of ``kind``.

    Uses the server named by ``VLLM_TEST_URL`` (or the kind's variable, see the module doc)
    when set; otherwise starts one (or waits for ``launched``, from :func:`launch_server`)
    and stops it on exit.
    """
    external = external_url(kind)
    if external:
        wait_healthy(external, startup_timeout)
        yield external
        return
    server = launched or launch_server(kind, env=env)
    try:
        server.wait_ready(startup_timeout)
        yield server.base_url
    finally:
        server.stop()


def health_ok(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
            status: int = response.status
            return status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def terminate_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=10)
    # Children (the engine core) may outlive the main process by a moment.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(path: Path | None, lines: int) -> str:
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(encoding="utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process started with ``start_new_session`` and its children, at once."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
