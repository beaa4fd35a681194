"""The adapter's modules import only downward (docs/architecture.md), and the transport knows no
API's fields."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "adapter"

#: Each module's layer: a module may import only from layers below its own. A name matches
#: its longest prefix here.
LAYERS: dict[str, float] = {
    # Nothing of ours.
    "adapter.config": 0,
    "adapter.errors": 0,
    "adapter.jsonutil": 0,
    "adapter.clock": 0,
    "adapter.metrics": 0,
    "adapter.requestctx": 0,
    "adapter.framing": 0,
    "adapter.logs": 0.5,
    "adapter.admission": 0.5,
    "adapter.server": 0,
    "adapter.backends.httpclient": 0,
    # Wire formats, bookkeeping.
    "adapter.ollama_api.options": 0.75,
    "adapter.ollama_api.modelfile": 1,
    "adapter.ollama_api.models": 1.25,
    "adapter.ollama_api": 1.5,
    "adapter.cors": 1,
    "adapter.middleware": 1,
    "adapter.supervisor": 1,
    # Backends, from their interface up.
    "adapter.backends.base": 2,
    "adapter.modelstore": 2,
    "adapter.backends.upstream": 3,
    "adapter.backends.modellist": 3,
    "adapter.backends.passthrough": 3.5,
    # The bits of OpenAI's and Anthropic's formats the adapter writes itself.
    "adapter.openai_api": 3,
    "adapter.anthropic_api": 3,
    "adapter.backends.vllm.to_openai": 4,
    "adapter.backends.vllm.truncate": 4,
    "adapter.backends.vllm.from_openai": 4,
    "adapter.backends.vllm.catalogue": 5,
    "adapter.backends.vllm.stream": 5,
    "adapter.backends.vllm.relay": 6,
    "adapter.backends.vllm.backend": 7,
    "adapter.backends.ollama": 7,
    "adapter.backends.vllm": 8,
    "adapter.backends": 8,
    # Routing, then the HTTP face.
    "adapter.router": 9,
    "adapter.services": 10,
    # A route's trip: parse (inbound), ask (a backend), answer (answers); siblings.
    "adapter.api.inbound": 11,
    "adapter.api.answers": 11,
    "adapter.api.serving": 12,
    "adapter.api": 13,
    "adapter.app": 14,
    "adapter.cli": 15,
    "adapter.__main__": 16,
    "adapter": 16,
}


def layer(module: str) -> float:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        found = LAYERS.get(".".join(parts[:n]))
        if found is not None:
            return found
    raise AssertionError(f"{module} has no layer in LAYERS")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("adapter"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("adapter"))
    return found


def known_module(name: str) -> str:
    """``from adapter.x import y`` names a module or something in one: the module."""
    while name and not (
        (ROOT / Path(*name.split("."))).with_suffix(".py").exists()
        or (ROOT / Path(*name.split("."))).is_dir()
    ):
        name = name.rpartition(".")[0]
    return name


def test_every_import_points_down() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_name(path)
        for target in {known_module(i) for i in imports_of(path)}:
            if target == me or me.startswith(target + "."):
                continue  # a package's own __init__, or the package a module lives in
            if layer(target) >= layer(me):
                upward.append(f"{me} ({layer(me)}) imports {target} ({layer(target)})")
    assert upward == []


#: The backend classes: only the composition root (``app.py``) builds them.
BACKEND_CLASSES = ("adapter.backends.vllm", "adapter.backends.ollama")


def reaches(start: str) -> set[str]:
    """Every module of ours that ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        me = todo.pop()
        path = ROOT / Path(*me.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for found in {known_module(i) for i in imports_of(path)} - seen:
            seen.add(found)
            todo.append(found)
    return seen


def test_the_routes_reach_no_backend_class() -> None:
    """``adapter/api/`` sees backends as the ``Backend`` protocol, through the router: no
    module of it imports, directly or through another module, one that defines a backend."""
    found = {
        f"{module_name(path)} reaches {target}"
        for path in sorted((PACKAGE / "api").rglob("*.py"))
        for target in reaches(module_name(path))
        if target.startswith(BACKEND_CLASSES)
    }
    assert found == set()


def test_the_reach_check_sees_a_backend_class() -> None:
    """What the check above looks at: the app, which builds them, reaches both classes."""
    assert {"adapter.backends.vllm.backend", "adapter.backends.ollama"} <= reaches("adapter.app")


TRANSPORT = ["adapter/backends/httpclient.py", "adapter/backends/upstream.py"]
#: Field names of Ollama's and OpenAI's bodies: transport code moves bytes and knows none.
API_FIELDS = ['"model"', '"messages"', '"choices"', '"prompt"', '"done"', '"delta"', '"options"']


def test_the_transport_knows_no_api_field() -> None:
    found = [
        f"{f}: {field}"
        for f in TRANSPORT
        for field in API_FIELDS
        if field in (ROOT / f).read_text()
    ]
    assert found == []


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """What the check above looks at: an import from a higher layer is found."""
    sample = PACKAGE / "backends" / "vllm" / "to_openai.py"
    assert "adapter.ollama_api.requests" in imports_of(sample)
    assert layer("adapter.api.routes") > layer("adapter.backends.vllm.to_openai")
    assert layer("adapter.router") > layer("adapter.backends.vllm.backend")
