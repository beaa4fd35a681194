"""Which backend serves a model name: aliases, ``:latest`` and case, and the merged catalogue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from adapter.backends.base import ModelEntry, display_name, normalize
from adapter.backends.ollama import OllamaBackend
from adapter.backends.vllm import VLLMBackend
from adapter.errors import OllamaError

log = logging.getLogger("adapter.router")


class Router:
    """Resolves Ollama model names to backend entries and lists what is served.

    vLLM servers come first, in configuration order, then the Ollama passthrough; a name
    served twice belongs to the first. One backend being down leaves the others listed.
    """

    def __init__(
        self,
        vllm: list[VLLMBackend],
        ollama: OllamaBackend | None,
        aliases: dict[str, str],
        capabilities: dict[str, tuple[str, ...]],
        cache_ttl: float = 0.0,
    ) -> None:
        self.vllm = vllm
        self.ollama = ollama
        self.aliases = aliases
        self._extra_caps = {normalize(k): v for k, v in capabilities.items()}
        self._seen: list[list[dict[str, Any]] | None] = []
        self._entries: list[ModelEntry] = []
        self._index: dict[str, ModelEntry] = {}
        # A name found in the catalogue is answered from it at once (the hot path resolves a
        # name per request); once the catalogue is older than the backends' cache time it is
        # refreshed in the background, so no request waits on a model list.
        self._ttl = cache_ttl
        self._checked_at = float("-inf")
        self._refresh: asyncio.Task[None] | None = None

    def _caps(self, base: frozenset[str] | None, *names: str) -> tuple[str, ...]:
        caps = set(base or {"completion"})
        for name in names:
            caps.update(self._extra_caps.get(normalize(name), ()))
        order = ("completion", "tools", "insert", "vision", "embedding", "thinking")
        return tuple(c for c in order if c in caps)

    async def _lists(self, refresh: bool) -> list[tuple[Any, list[dict[str, Any]] | None]]:
        backends: list[Any] = [*self.vllm, *([self.ollama] if self.ollama else [])]
        out: list[tuple[Any, list[dict[str, Any]] | None]] = []
        first_error: OllamaError | None = None
        for backend in backends:
            try:
                out.append((backend, await backend.models(refresh=refresh)))
            except OllamaError as exc:
                first_error = first_error or exc
                log.warning("%s at %s unavailable: %s", backend.name, backend.url, exc.message)
                out.append((backend, None))
        if first_error is not None and all(models is None for _, models in out):
            raise first_error
        return out

    async def catalogue(self, *, refresh: bool = False) -> list[ModelEntry]:
        """Every served model, then every alias whose target is served."""
        lists = await self._lists(refresh)
        self._checked_at = time.monotonic()
        seen = [models for _, models in lists]
        if len(seen) == len(self._seen) and all(
            a is b for a, b in zip(seen, self._seen, strict=True)
        ):
            return self._entries
        entries: list[ModelEntry] = []
        taken: dict[str, ModelEntry] = {}
        for backend, models in lists:
            for card in models or []:
                entry = self._entry(backend, card)
                key = normalize(entry.name)
                if key not in taken:
                    taken[key] = entry
                    entries.append(entry)
        by_served = {(e.backend, e.served): e for e in entries}
        for alias, target in self.aliases.items():
            base = next((e for (_, served), e in by_served.items() if served == target), None)
            key = normalize(alias)
            if base is None or key in taken:
                continue
            entry = ModelEntry(
                name=display_name(alias),
                served=base.served,
                backend=base.backend,
                max_model_len=base.max_model_len,
                root=base.root,
                alias_of=base.name,
                capabilities=self._caps(frozenset(base.capabilities), alias),
                info=base.info,
            )
            taken[key] = entry
            entries.append(entry)
        self._seen, self._entries, self._index = seen, entries, taken
        return entries

    def _entry(self, backend: Any, card: dict[str, Any]) -> ModelEntry:
        if isinstance(backend, VLLMBackend):
            served = str(card["id"])
            return ModelEntry(
                name=display_name(served),
                served=served,
                backend=backend.name,
                max_model_len=card.get("max_model_len"),
                root=card.get("root"),
                capabilities=self._caps(backend.features, served),
            )
        name = str(card.get("model") or card.get("name"))
        caps = card.get("capabilities")
        return ModelEntry(
            name=display_name(name),
            served=name,
            backend=backend.name,
            max_model_len=(card.get("details") or {}).get("context_length"),
            capabilities=self._caps(frozenset(caps) if caps else None, name),
            info=card,
        )

    async def resolve(self, name: str) -> ModelEntry | None:
        """The entry serving ``name``; on a miss the catalogue is fetched again once.

        A known name is answered from the catalogue even when it is due for a refresh: the
        refresh runs in the background (a busy vLLM can take seconds to list its models,
        and every request would wait for it), and a model vLLM no longer serves gets vLLM's
        own 404 meanwhile.
        """
        key = normalize(name)
        if not key:
            return None
        entry = self._index.get(key)
        if entry is not None:
            if time.monotonic() - self._checked_at >= self._ttl:
                self._refresh_in_background()
            return entry
        await self.catalogue()
        entry = self._index.get(key)
        if entry is None:
            await self.catalogue(refresh=True)
            entry = self._index.get(key)
        return entry

    def _refresh_in_background(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            return
        self._checked_at = time.monotonic()  # one refresh per cache period, even if it fails
        self._refresh = asyncio.get_running_loop().create_task(self._background_refresh())

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
