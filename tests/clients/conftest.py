"""Client tests: the official client packages (ollama, langchain-ollama, llama-index, ollama-js)
and the raw start-up calls of Open WebUI and VS Code Copilot, against ``live_adapter`` (the
adapter as a process in front of the real vLLM chat and embedding servers on CPU, from the root
conftest).

The tiny model is random: its text is noise, and it never calls a tool on its own. The tests
check what is real (shapes, counts, finish reasons, schemas, errors) and each says in its
docstring what it asserts where the model cannot produce a behaviour.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHAT_MODEL = "tiny-llm"
EMBED_MODEL = "all-minilm"
ALIAS = "llama3.2"
CONTEXT_LENGTH = 512


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
