"""A backend's model list, as its server last gave it: one cache both backends share."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any

from adapter.ollama_api.models import ModelEntry

#: A ``refresh`` (a name was not found) asks the server again at most this often, so a client
#: repeating an unknown name cannot turn each of its requests into two.
REFRESH_SECONDS = 0.5


class ModelList:
    """The entries ``fetch`` answers, kept ``ttl`` seconds (``ADAPTER_MODELS_CACHE_TTL``).

    One ask at a time: requests that find the list stale while it is being asked for wait
    for that answer instead of asking again; the ask carries no request's context. The same
    list object is answered while nothing in it changed, so the router rebuilds its merged
    catalogue only when one did. A failed ask raises to the caller and leaves the old list to
    be asked for again next time.
    """

    def __init__(
        self,
        fetch: Callable[[], Coroutine[Any, Any, list[ModelEntry]]],
        *,
        ttl: float,
        now: Callable[[], float],
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._now = now
        self._entries: list[ModelEntry] | None = None
        self._at = float("-inf")
        self._lock = asyncio.Lock()

    def _fresh(self, max_age: float) -> bool:
        return self._entries is not None and self._now() - self._at < max_age

    async def get(self, *, refresh: bool = False) -> list[ModelEntry]:
        max_age = REFRESH_SECONDS if refresh else self._ttl
        if self._fresh(max_age) and self._entries is not None:
            return self._entries
        async with self._lock:
            if self._fresh(max_age) and self._entries is not None:
                return self._entries
            # Shared work, in a context of its own: the request that happens to need the list
            # first (or a refresh) must not lend the list call and the capability probes its id
            # or its session headers (with a session-hashing router in front of vLLM, they
            # would decide where the probes land). Cancelled with its awaiting request.
            entries = await asyncio.get_running_loop().create_task(
                self._fetch(), context=contextvars.Context()
            )
            if self._entries is None or entries != self._entries:
                self._entries = entries
            self._at = self._now()
            return self._entries
