"""What Ollama does that vLLM does not, with the real ``ollama`` client against the live adapter
in front of the real vLLM on CPU: long histories truncated, derived models (create, copy,
show, chat, delete, a restart), strict JSON under ``format``, and honest timings."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import ollama
import pydantic
import pytest

from tests.clients.conftest import CHAT_MODEL, CONTEXT_LENGTH
from tests.support.adapter_proc import running_adapter


@pytest.fixture
def client(live_adapter: str) -> ollama.Client:
    return ollama.Client(host=live_adapter, timeout=120)


def long_history(turns: int) -> list[dict[str, str]]:
    out = [{"role": "system", "content": "Answer in one line."}]
    for i in range(turns):
        out.append({"role": "user", "content": f"Tell me about harbour number {i}, please. " * 3})
        out.append({"role": "assistant", "content": f"Harbour {i} is by the sea and old. " * 3})
    out.append({"role": "user", "content": "And the last one?"})
    return out


def test_a_history_three_times_the_context_is_truncated_or_refused(
    client: ollama.Client, live_adapter: str, vllm_url: str
) -> None:
    messages = long_history(40)
    counted = httpx.post(
        f"{vllm_url}/tokenize", json={"model": CHAT_MODEL, "messages": messages}, timeout=60
    ).json()["count"]
    assert counted > 3 * CONTEXT_LENGTH
    refused = httpx.post(
        f"{live_adapter}/api/chat",
        json={"model": CHAT_MODEL, "messages": messages, "stream": False, "truncate": False},
        timeout=60,
    )
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("the input length exceeds the context length")
    options = {"num_predict": 16, "seed": 1}
    answer = client.chat(model=CHAT_MODEL, messages=messages, options=options)
    assert answer.done and answer.eval_count is not None and answer.eval_count >= 1
    # What was really sent: the cut history fits, with the room for the answer it asked for.
    assert answer.prompt_eval_count is not None
    assert CONTEXT_LENGTH // 3 < answer.prompt_eval_count <= CONTEXT_LENGTH - 16
    streamed = list(client.chat(model=CHAT_MODEL, messages=messages, stream=True, options=options))
    assert streamed[-1].done and streamed[-1].prompt_eval_count == answer.prompt_eval_count


def test_derived_models_from_create_to_delete(client: ollama.Client, live_models_dir: Path) -> None:
    client.create(
        model="notes",
        from_="llama3.2",
        system="You write meeting notes.",
        parameters={"num_predict": 5, "temperature": 0.1},
        stream=False,
    )
    shown = client.show("notes")
    assert "num_predict" in (shown.parameters or "")
    assert "FROM tiny-llm:latest" in (shown.modelfile or "")
    assert "SYSTEM You write meeting notes." in (shown.modelfile or "")
    answer = client.chat(model="notes", messages=[{"role": "user", "content": "Minutes?"}])
    assert answer.eval_count == 5  # the derived model's num_predict decided it
    client.copy("notes", "minutes")
    assert client.chat(model="minutes", messages=[{"role": "user", "content": "x"}]).eval_count == 5
    names = [m.model for m in client.list().models]
    assert "notes:latest" in names and "minutes:latest" in names
    client.delete("minutes")
    with pytest.raises(ollama.ResponseError) as err:
        client.show("minutes")
    assert err.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as served:
        client.delete(CHAT_MODEL)
    assert served.value.status_code == 403
    assert (live_models_dir / "notes%3Alatest.modelfile").exists()


def test_a_derived_model_survives_a_restart(vllm_url: str, tmp_path: Path) -> None:
    env = {"ADAPTER_MODELS_DIR": str(tmp_path)}
    with running_adapter(vllm_url, env=env) as url:
        ollama.Client(host=url).create(
            model="short", from_=CHAT_MODEL, parameters={"num_predict": 3}
        )
    with running_adapter(vllm_url, env=env) as url:
        answer = ollama.Client(host=url).chat(
            model="short", messages=[{"role": "user", "content": "x"}]
        )
        assert answer.eval_count == 3


class Person(pydantic.BaseModel):
    # Bounded strings: the grammar then closes every object well inside num_predict, so every
    # answer is a whole one to check (unbounded, the random model ran to the cap 17 times in 18).
    name: str = pydantic.Field(max_length=24)
    city: str = pydantic.Field(max_length=24)


def test_schema_answers_are_strict_json_every_time(client: ollama.Client) -> None:
    """vLLM's grammar lets raw control characters into strings (most of the random model's
    answers here carry one); what the client gets parses with json.loads(strict=True) and
    pydantic, streamed or not."""
    schema = Person.model_json_schema()
    prompt = [{"role": "user", "content": "Who?"}]
    texts = []
    for seed in range(12):
        answer = client.chat(
            model=CHAT_MODEL,
            messages=prompt,
            format=schema,
            options={"seed": seed, "num_predict": 80},
        )
        assert answer.done_reason == "stop", answer  # a whole object, not one cut at the cap
        texts.append(answer.message.content or "")
    for seed in range(6):
        parts = list(
            client.chat(
                model=CHAT_MODEL,
                messages=prompt,
                format=schema,
                stream=True,
                options={"seed": 100 + seed, "num_predict": 80},
            )
        )
        assert parts[-1].done_reason == "stop", parts[-1]
        texts.append("".join(p.message.content or "" for p in parts))
    people = [Person.model_validate_json(text) for text in texts]
    for text in texts:
        json.loads(text, strict=True)
    # The escaping was needed, not idle: some strings hold control characters.
    assert any(ord(c) < 32 for p in people for c in p.name + p.city)


def test_non_streaming_durations_mean_something(client: ollama.Client) -> None:
    answer = client.chat(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Tell me about the sea."}],
        options={"num_predict": 24},
    )
    total = answer.total_duration or 0
    for part in (answer.load_duration, answer.prompt_eval_duration, answer.eval_duration):
        assert part is not None and 1 < part < total
    assert answer.prompt_eval_duration and answer.prompt_eval_duration > 1_000  # > 1 µs: real
