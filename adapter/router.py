"""Which backend serves a model name: aliases, ``:latest`` and case, and the merged catalogue."""

from __future__ import annotations

from typing import Any

from adapter.backends.base import ModelEntry, display_name, normalize
from adapter.backends.vllm import VLLMBackend


def _capabilities(card: dict[str, Any]) -> tuple[str, ...]:
    return ("completion",)


class Router:
    """Resolves Ollama model names to backend entries and lists what is served."""

    def __init__(self, vllm: VLLMBackend, aliases: dict[str, str]) -> None:
        self.vllm = vllm
        self.aliases = aliases
        self._cards: object = None
        self._entries: list[ModelEntry] = []
        self._index: dict[str, ModelEntry] = {}

    async def catalogue(self, *, refresh: bool = False) -> list[ModelEntry]:
        """Every model vLLM serves, then every alias whose target it serves."""
        cards = await self.vllm.models(refresh=refresh)
        if cards is self._cards:
            return self._entries
        entries: list[ModelEntry] = []
        by_served: dict[str, ModelEntry] = {}
        for card in cards:
            served = str(card["id"])
            entry = ModelEntry(
                name=display_name(served),
                served=served,
                backend="vllm",
                max_model_len=card.get("max_model_len"),
                root=card.get("root"),
                capabilities=_capabilities(card),
            )
            entries.append(entry)
            by_served[served] = entry
        taken = {normalize(e.name) for e in entries}
        for alias, target in self.aliases.items():
            base = by_served.get(target)
            if base is None or normalize(alias) in taken:
                continue
            entries.append(
                ModelEntry(
                    name=display_name(alias),
                    served=base.served,
                    backend=base.backend,
                    max_model_len=base.max_model_len,
                    root=base.root,
                    alias_of=base.name,
                    capabilities=base.capabilities,
                )
            )
            taken.add(normalize(alias))
        self._cards, self._entries = cards, entries
        self._index = {normalize(e.name): e for e in entries}
        return entries

    async def resolve(self, name: str) -> ModelEntry | None:
        """The entry serving ``name``; on a miss the catalogue is fetched again once."""
        key = normalize(name)
        if not key:
            return None
        await self.catalogue()
        entry = self._index.get(key)
        if entry is None:
            await self.catalogue(refresh=True)
            entry = self._index.get(key)
        return entry
