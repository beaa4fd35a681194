#!/usr/bin/env python3
"""Export the derived models of a running Ollama (phase 1) as Modelfiles the adapter reads.

    scripts/export-modelfiles.py http://localhost:11434 ./models [--map qwen2.5:7b=qwen2.5:7b]

For every model that Ollama made FROM another (``/api/show``: ``details.parent_model``), writes
``DIR/<name>.modelfile`` with ``FROM <parent>`` and the model's system prompt, parameters and
messages, as ``/api/show`` reports them; point ``ADAPTER_MODELS_DIR`` at DIR (or copy the files
into its volume). The parent must be a name the adapter serves in phase 2 (vLLM's
``--served-model-name``, or ``MODEL_ALIASES``): ``--map OLD=NEW`` renames one. Models pulled as
they are (no parent) are listed: serve those with vLLM. TEMPLATE is not exported (vLLM renders
with the model's own chat template). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote


def call(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base.rstrip("/") + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


def quoted(value: str) -> str:
    if "\n" in value or '"' in value or value != value.strip() or not value:
        return f'"""{value}"""'
    return value


def parameter_lines(text: str) -> list[str]:
    """``/api/show``'s ``parameters`` (``name   value`` a line, strings quoted) as PARAMETERs."""
    out = []
    for line in text.splitlines():
        name, _, value = line.strip().partition(" ")
        value = value.strip()
        if not name or not value:
            continue
        if value.startswith('"'):
            value = shlex.split(value)[0] if value.endswith('"') else value.strip('"')
        out.append(f"PARAMETER {name} {quoted(value)}")
    return out


def modelfile(shown: dict[str, Any], parent: str) -> str:
    lines = [f"FROM {parent}"]
    if shown.get("system"):
        lines.append(f"SYSTEM {quoted(shown['system'])}")
    lines += parameter_lines(shown.get("parameters") or "")
    for message in shown.get("messages") or []:
        lines.append(f"MESSAGE {message['role']} {quoted(message.get('content') or '')}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("ollama_url", help="the phase-1 Ollama, e.g. http://localhost:11434")
    p.add_argument("folder", type=Path, help="where to write the Modelfiles")
    p.add_argument("--map", action="append", default=[], metavar="OLD=NEW",
                   help="serve a parent under another name in phase 2")  # fmt: skip
    args = p.parse_args(argv)
    renames = dict(item.split("=", 1) for item in args.map)
    args.folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for model in call(args.ollama_url, "/api/tags").get("models") or []:
        name = model.get("model") or model.get("name")
        shown = call(args.ollama_url, "/api/show", {"model": name})
        parent = (shown.get("details") or {}).get("parent_model") or ""
        if not parent:
            print(f"{name}: a model of its own (no parent): serve it with vLLM")
            continue
        parent = renames.get(parent, parent)
        path = args.folder / (quote(name, safe="") + ".modelfile")
        path.write_text(modelfile(shown, parent), encoding="utf-8")
        print(f"{name}: FROM {parent} -> {path}")
        written += 1
    print(f"{written} derived model(s) written to {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
