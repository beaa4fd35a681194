"""An adapter that asks for a key (``ADAPTER_API_KEY``), in front of the real vLLM on CPU, as
each client sends one: ollama-python's ``headers=``, the ``openai`` SDK's ``api_key`` (a
bearer token), the ``anthropic`` SDK's ``x-api-key``. Its log is JSON (``ADAPTER_LOG_FORMAT``)
and carries request ids, never the prompt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from tests.clients.conftest import CHAT_MODEL
from tests.support.adapter_proc import LOG_DIR, running_adapter

KEY = "k-live-7d1f"
SECRET = "my account number is 4417-1234"  # a prompt that must never reach the log


@pytest.fixture(scope="module")
def keyed(vllm_url: str) -> Iterator[str]:
    env = {"ADAPTER_API_KEY": f"other-key,{KEY}", "ADAPTER_LOG_FORMAT": "json"}
    with running_adapter(vllm_url, env=env) as url:
        yield url


def log_of(url: str) -> list[dict[str, Any]]:
    port = url.rsplit(":", 1)[1]
    text = (LOG_DIR / f"adapter-{port}.log").read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_ollama_python_sends_the_key_in_headers(keyed: str) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=keyed).list()
    assert refused.value.status_code == 401
    client = ollama.Client(host=keyed, headers={"Authorization": f"Bearer {KEY}"})
    assert f"{CHAT_MODEL}:latest" in [m.model for m in client.list().models]
    out = client.chat(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": SECRET}],
        options={"num_predict": 3},
    )
    assert out.done and out.eval_count == 3


def test_the_sdks_send_the_key_their_own_way(keyed: str) -> None:
    with (
        openai.OpenAI(base_url=f"{keyed}/v1", api_key="wrong", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError),
    ):
        bad.models.list()
    with openai.OpenAI(base_url=f"{keyed}/v1", api_key=KEY, max_retries=0) as good:
        assert f"{CHAT_MODEL}:latest" in [m.id for m in good.models.list()]
    with (
        anthropic.Anthropic(base_url=keyed, api_key="wrong", max_retries=0) as bad_claude,
        pytest.raises(anthropic.AuthenticationError),
    ):
        bad_claude.messages.create(model=CHAT_MODEL, max_tokens=2, messages=[])
    with anthropic.Anthropic(base_url=keyed, api_key=KEY, max_retries=0) as claude:
        said = claude.messages.create(
            model=CHAT_MODEL, max_tokens=2, messages=[{"role": "user", "content": "hi"}]
        )
    assert said.usage.output_tokens == 2


def test_liveness_and_probes_stay_open(keyed: str) -> None:
    assert httpx.get(f"{keyed}/").text == "Ollama is running"
    assert httpx.get(f"{keyed}/ready").status_code == 200
    assert "ollama_adapter_requests_total" in httpx.get(f"{keyed}/metrics").text


def test_the_log_is_json_with_request_ids_and_no_prompt(keyed: str) -> None:
    rid = "trace-abc-123"
    headers = {"Authorization": f"Bearer {KEY}", "X-Request-ID": rid}
    body = {"model": CHAT_MODEL, "prompt": SECRET, "stream": False, "options": {"num_predict": 2}}
    answer = httpx.post(f"{keyed}/api/generate", json=body, headers=headers, timeout=60)
    assert answer.status_code == 200 and answer.headers["x-request-id"] == rid
    # The access line is written once the answer has left: the client may read it first.
    deadline = time.monotonic() + 10
    while True:
        lines = log_of(keyed)
        access = [line["access"] for line in lines if line.get("request_id") == rid]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not any(SECRET in json.dumps(line) for line in lines)
    assert access, lines[-3:]
    assert isinstance(access[-1], dict)
    assert (access[-1]["path"], access[-1]["status"]) == ("/api/generate", 200)
    assert (access[-1]["model"], access[-1]["completion_tokens"]) == (CHAT_MODEL, 2)
