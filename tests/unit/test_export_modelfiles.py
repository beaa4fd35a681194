"""scripts/export-modelfiles.py against a stand-in phase-1 Ollama (its /api/tags and /api/show
shapes): the Modelfiles it writes are the ones the adapter reads."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from adapter.ollama_api.modelfile import parse

ROOT = Path(__file__).resolve().parents[2]

SHOWN: dict[str, dict[str, Any]] = {
    "qwen2.5:7b": {"details": {"parent_model": "", "family": "qwen2"}, "parameters": ""},
    "notes:latest": {
        "details": {"parent_model": "qwen2.5:7b", "family": "qwen2"},
        "system": "You write meeting notes.\nBe brief.",
        "parameters": 'num_predict                    256\nstop                           "END"\n'
        'stop                           "<|im_end|>"\ntemperature                    0.2',
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}],
        "modelfile": "FROM /root/.ollama/models/blobs/sha256-abc\n",
    },
}


class StandIn(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._send({"models": [{"name": n, "model": n} for n in SHOWN]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._send(SHOWN[body["model"]])

    def _send(self, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ollama() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export", ROOT / "scripts/export-modelfiles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_derived_models_come_out_as_modelfiles_the_adapter_reads(
    ollama: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert script().main([ollama, str(tmp_path), "--map", "qwen2.5:7b=qwen2.5-7b"]) == 0
    (path,) = tmp_path.iterdir()
    assert path.name == "notes%3Alatest.modelfile"
    model = parse(path.read_text(), "notes:latest")
    assert model.base == "qwen2.5-7b"  # renamed by --map
    assert model.system == "You write meeting notes.\nBe brief."
    assert model.options == {"num_predict": 256, "stop": ["END", "<|im_end|>"], "temperature": 0.2}
    assert model.messages == (("user", "hi"), ("assistant", "ok"))
    assert "qwen2.5:7b: a model of its own" in capsys.readouterr().out
