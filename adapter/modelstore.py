"""Derived models kept as Modelfiles in ``ADAPTER_MODELS_DIR``: one file a model, read at start,
written by ``/api/create`` and ``/api/copy``, removed by ``/api/delete``.

A file's name is the model's name, percent-escaped (``notes%3Alatest.modelfile``); a file ops
write by hand may use the bare name (``notes.modelfile`` is ``notes:latest``). Several workers
or replicas may share the folder: each notices a change by the folder's modification time (a
file added, replaced or removed), looked at whenever the catalogue is built and before a
derived model answers, so a model one worker made is found by every other at once. Writes go
to a temporary file renamed over the old one, so no reader sees half a Modelfile. A folder
mounted read-only (a ConfigMap) is read, and changes through the API are refused.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote

from adapter.errors import OllamaError
from adapter.ollama_api.modelfile import Derived, ModelfileError, parse, render
from adapter.ollama_api.models import display_name, normalize

log = logging.getLogger("adapter.models")

SUFFIX = ".modelfile"


def file_name(name: str) -> str:
    return quote(display_name(name), safe="") + SUFFIX


class ModelStore:
    """The derived models of one folder (or none, without ``ADAPTER_MODELS_DIR``)."""

    def __init__(self, folder: str | None) -> None:
        self.folder = Path(folder) if folder else None
        self._models: dict[str, Derived] = {}
        self._stamp: tuple[int, int] | None = None
        #: The same object until the folder changes (the router rebuilds its catalogue then).
        self.models: list[Derived] = []
        self.refresh()

    def refresh(self) -> list[Derived]:
        """Read the folder again if it changed; the models."""
        if self.folder is None:
            return self.models
        try:
            stat = self.folder.stat()
        except FileNotFoundError:
            stamp = (0, 0)
        else:
            stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp == self._stamp:
            return self.models
        self._stamp = stamp
        models: dict[str, Derived] = {}
        for path in sorted(self.folder.glob(f"*{SUFFIX}")) if stamp != (0, 0) else []:
            name = display_name(unquote(path.name[: -len(SUFFIX)]))
            try:
                models[normalize(name)] = parse(path.read_text(encoding="utf-8"), name)
            except (ModelfileError, OSError, UnicodeDecodeError) as exc:
                log.error("ignoring %s: %s", path, getattr(exc, "message", exc))
        self._models = models
        self.models = list(models.values())
        return self.models

    def get(self, name: str) -> Derived | None:
        return self._models.get(normalize(name))

    def _writable(self) -> Path:
        if self.folder is None:
            raise OllamaError(
                501,
                "derived models need ADAPTER_MODELS_DIR, a folder for their Modelfiles "
                "(the models vLLM serves are set by its --served-model-name)",
            )
        return self.folder

    def save(self, model: Derived, base: str) -> None:
        """Write ``model``'s Modelfile (``FROM base``), replacing one of the same name."""
        folder = self._writable()
        tmp: str | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(render(model, base))
            os.replace(tmp, folder / file_name(model.name))
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise self._refused(exc) from None
        self.refresh()

    def delete(self, name: str) -> bool:
        """Remove a derived model; whether there was one."""
        folder = self._writable()
        found = self.get(name)
        if found is None:
            return False
        candidates = [folder / file_name(found.name), folder / f"{found.name}{SUFFIX}"]
        bare = found.name.removesuffix(":latest")
        candidates.append(folder / f"{bare}{SUFFIX}")
        removed = False
        for path in candidates:
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._refused(exc) from None
        self.refresh()
        return removed

    def _refused(self, exc: OSError) -> OllamaError:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return OllamaError(
                403,
                f"the models folder {self.folder} is read-only here: derived models are "
                "managed by its Modelfiles",
            )
        return OllamaError(500, f"cannot write to the models folder {self.folder}: {exc}")
