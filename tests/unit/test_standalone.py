"""The repository stands on its own: no file of it reads, names or links a path above its root.

A user clones the project with nothing beside it, so a test data folder, a script or a doc link
that reaches outside the clone works only on the machine where it was written.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Names of places outside the repository that crept in before (a folder beside the clone,
#: the absolute path of one machine's checkout).
FORBIDDEN = re.compile(
    r"\.\./shared\b|(?<![\w.])shared/(fixtures|reference|design)\b|/work/|/\s*[\"']shared[\"']"
)
#: A relative path that climbs: ``../x``, ``../../x``. Resolved against the file's folder.
CLIMB = re.compile(r"(?<![\w.$}/])((?:\.\./)+)([\w.-]*)")


def tracked_files() -> list[Path]:
    """Every file of the project (git's list; without git, the tree minus what git ignores)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        return [ROOT / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {
            ".git",
            ".venv",
            ".venv-vllm",
            ".venv-webui",
            ".cache",
            "node_modules",
            "__pycache__",
        }
        return [
            p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)
        ]


def texts() -> dict[Path, str]:
    out = {}
    for path in tracked_files():
        if not path.exists() or path == Path(__file__).resolve():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (images)
        out[path] = data.decode("utf-8", "replace")
    return out


def test_no_file_names_a_place_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for path, text in texts().items()
        for m in FORBIDDEN.finditer(text)
    ]
    assert found == []


def test_no_relative_path_climbs_above_the_root() -> None:
    outside = []
    for path, text in texts().items():
        for m in CLIMB.finditer(text):
            target = (path.parent / m.group(1) / m.group(2)).resolve()
            if target != ROOT and ROOT not in target.parents:
                line = text.count("\n", 0, m.start()) + 1
                outside.append(f"{path.relative_to(ROOT)}:{line}: {m.group(0)}")
    assert outside == []


def test_the_checks_find_what_they_look_for(tmp_path: Path) -> None:
    """The patterns above match the forms that broke a clone before."""
    assert FORBIDDEN.search('Path(__file__).parents[1].parent / "shared" / "fixtures"')
    assert FORBIDDEN.search("see ../shared/reference/OLLAMA_API.md")
    assert FORBIDDEN.search('FIXTURES = Path("/work/shared/fixtures/vllm-0.32.0-cpu")')
    match = CLIMB.search('context: "${NOTES_CONTEXT:-../notes}"')
    assert match is not None and match.group(1) == "../"
    assert CLIMB.search('cd "$(dirname "$0")/.."') is None
