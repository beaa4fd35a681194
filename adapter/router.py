"""Which backend serves a model name: aliases, ``:latest`` and case, and the merged catalogue."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
from collections.abc import Sequence

from adapter.backends.base import Backend, Target
from adapter.clock import SYSTEM, Clock
from adapter.errors import OllamaError
from adapter.modelstore import ModelStore
from adapter.ollama_api.modelfile import Derived
from adapter.ollama_api.models import ModelEntry, display_name, normalize, ordered_capabilities

log = logging.getLogger("adapter.router")


class Router:
    """Resolves Ollama model names to the backend serving them and lists what is served.

    Backends are asked in order (every vLLM server as configured, then the Ollama
    passthrough); a name served twice belongs to the first. One backend being down leaves
    the others listed. ``MODEL_CAPABILITIES`` adds to what a backend says a model can do.
    Derived models (``store``) come last, each over the model its ``FROM`` names.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        aliases: dict[str, str],
        capabilities: dict[str, tuple[str, ...]],
        cache_ttl: float = 0.0,
        clock: Clock = SYSTEM,
        store: ModelStore | None = None,
    ) -> None:
        self.backends = list(backends)
        self.store = store or ModelStore(None)
        self._by_name = {b.name: b for b in self.backends}
        self.aliases = aliases
        self._extra_caps = {normalize(k): v for k, v in capabilities.items()}
        self._seen: list[list[ModelEntry] | None] = []
        self._derived_seen: list[Derived] | None = None
        self._entries: list[ModelEntry] = []
        self._index: dict[str, Target] = {}
        # A name found in the catalogue is answered from it at once (the hot path resolves a
        # name per request); once the catalogue is older than the backends' cache time it is
        # refreshed in the background, so no request waits on a model list.
        self._ttl = cache_ttl
        self._now = clock.monotonic
        self._checked_at = float("-inf")
        self._refresh: asyncio.Task[None] | None = None

    def _with_overrides(self, entry: ModelEntry, *names: str) -> ModelEntry:
        extra = {c for n in names for c in self._extra_caps.get(normalize(n), ())}
        if not extra or extra <= set(entry.capabilities):
            return entry
        caps = ordered_capabilities({*entry.capabilities, *extra})
        return dataclasses.replace(entry, capabilities=caps)

    async def _lists(self, refresh: bool) -> list[list[ModelEntry] | None]:
        """Each backend's model list. One that cannot be asked keeps the list it last gave:
        its models do not vanish while it is unreachable, so a request for one is answered
        with that server's 503, not with a 404 that sends people looking for a typo."""
        out: list[list[ModelEntry] | None] = []
        first_error: OllamaError | None = None
        for i, backend in enumerate(self.backends):
            try:
                out.append(await backend.models(refresh=refresh))
            except OllamaError as exc:
                first_error = first_error or exc
                log.warning("%s at %s unavailable: %s", backend.name, backend.url, exc.message)
                out.append(self._seen[i] if i < len(self._seen) else None)
        if first_error is not None and all(models is None for models in out):
            raise first_error
        return out

    async def catalogue(self, *, refresh: bool = False) -> list[ModelEntry]:
        """Every served model, then every alias whose target is served (the same list object
        until a backend's list changes)."""
        seen = await self._lists(refresh)
        derived = self.store.refresh()
        self._checked_at = self._now()
        if (
            derived is self._derived_seen
            and len(seen) == len(self._seen)
            and all(a is b for a, b in zip(seen, self._seen, strict=True))
        ):
            return self._entries
        entries: list[ModelEntry] = []
        taken: dict[str, Target] = {}
        for backend, models in zip(self.backends, seen, strict=True):
            for served in models or []:
                entry = self._with_overrides(served, served.served)
                key = normalize(entry.name)
                if key not in taken:
                    taken[key] = Target(entry, backend)
                    entries.append(entry)
        for alias, target in self.aliases.items():
            base = next((t for t in taken.values() if t.entry.served == target), None)
            key = normalize(alias)
            if base is None or key in taken:
                continue
            entry = dataclasses.replace(
                base.entry, name=display_name(alias), alias_of=base.entry.name
            )
            entry = self._with_overrides(entry, alias)
            taken[key] = Target(entry, base.backend)
            entries.append(entry)
        for model in derived:
            found = self._derived_target(model, taken)
            if found is not None and normalize(model.name) not in taken:
                taken[normalize(model.name)] = found
                entries.append(found.entry)
        self._seen, self._entries, self._index = seen, entries, taken
        self._derived_seen = derived
        return entries

    def _derived_target(self, model: Derived, taken: dict[str, Target]) -> Target | None:
        """Where a derived model lives: the served model its ``FROM`` names, through other
        derived models (their settings under its own)."""
        for _ in range(8):
            base = taken.get(normalize(model.base))
            if base is not None:
                entry = dataclasses.replace(
                    base.entry,
                    name=display_name(model.name),
                    alias_of=base.entry.name,
                    derived=model,
                )
                return Target(entry, base.backend)
            parent = self.store.get(model.base)
            if parent is None or parent.name == model.name:
                break
            model = model.over(parent)
        log.warning("derived model %s: its FROM %s is not served now", model.name, model.base)
        return None

    async def find(self, name: str) -> Target | None:
        """The entry named ``name`` and its backend; on a miss the catalogue is fetched again.

        A known name is answered from the catalogue even when it is due for a refresh: the
        refresh runs in the background (a busy vLLM can take seconds to list its models,
        and every request would wait for it), and a model vLLM no longer serves gets vLLM's
        own 404 meanwhile.
        """
        key = normalize(name)
        if not key:
            return None
        target = self._index.get(key)
        stale = target is not None and target.entry.derived is not None
        # Another worker may have changed a derived model: the folder is looked at (a stat).
        if stale and self.store.refresh() is not self._derived_seen:
            await self.catalogue()
            target = self._index.get(key)
        if target is not None:
            if self._now() - self._checked_at >= self._ttl:
                self._refresh_in_background()
            return target
        await self.catalogue()
        target = self._index.get(key)
        if target is None:
            await self.catalogue(refresh=True)
            target = self._index.get(key)
        return target

    def backend(self, name: str) -> Backend:
        """The backend called ``name`` (an entry's ``backend``)."""
        return self._by_name[name]

    def _refresh_in_background(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            return
        self._checked_at = self._now()  # one refresh per cache period, even if it fails
        # A context of its own: the request that happens to start the refresh must not lend it
        # its id or its forwarded session headers (they would reach vLLM with the model list).
        self._refresh = asyncio.get_running_loop().create_task(
            self._background_refresh(), context=contextvars.Context()
        )

    async def _background_refresh(self) -> None:
        try:
            await self.catalogue()
        except OllamaError as exc:
            log.warning("model list refresh failed: %s", exc.message)
        except Exception as exc:  # a background task must not die unheard
            log.error("model list refresh failed: %r", exc, exc_info=exc)

    async def aclose(self) -> None:
        """Stop a background refresh still running."""
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
