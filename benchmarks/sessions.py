"""Where do a conversation's turns land? Multi-turn chats through the adapter and vLLM's router
in front of two real vLLM replicas, under each routing policy, read from the replicas' own
``/metrics`` (issue 28).

Every Ollama client resends the whole history each turn, so a turn's prompt is the previous
turn's prompt plus two messages: on the replica that served the previous turn, vLLM's prefix
cache holds all of it. The router decides whether the turn gets there. For each policy this
starts the router and an adapter in front of it, runs ``--sessions`` conversations of
``--turns`` turns (``--concurrency`` at a time, each turn after the previous one's answer, as a
person or a service would), and reports vLLM's own prefix-cache hit rate
(``vllm:prefix_cache_hits`` over ``vllm:prefix_cache_queries``, both replicas), the prompt
tokens computed (queried minus hit), the generated tokens per second, and how the requests
split over the replicas.

The policies: ``round_robin``; ``cache_aware`` (the router's radix tree of the prompts' text);
``consistent_hash`` with no session header (what an Ollama client sends: the router then
hashes the ``X-Request-ID`` the adapter sends with every request), with ``X-Session-ID``,
with Open WebUI's ``X-OpenWebUI-Chat-Id`` (the adapter sends it on as ``X-Session-ID``), and
with the key the adapter makes from the conversation's opening (``ADAPTER_SESSION_FROM_CHAT``).
Each run's system prompt carries its own label, so nothing one run cached helps the next.

    .venv/bin/python -m benchmarks.sessions                      # starts two SmolLM2 replicas
    .venv/bin/python -m benchmarks.sessions --replicas http://127.0.0.1:8001,http://127.0.0.1:8002
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from tests.support.adapter_proc import running_adapter
from tests.support.net import metric
from tests.support.router import start_router
from tests.support.vllm_cpu import VllmServer, launch_server

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "smollm2:135m"
#: (policy, the client header that names the conversation or None, whether the adapter names
#: a conversation from its opening when the client does not: ADAPTER_SESSION_FROM_CHAT)
CONFIGS: list[tuple[str, str | None, bool]] = [
    ("round_robin", None, False),
    ("cache_aware", None, False),
    ("consistent_hash", None, False),
    ("consistent_hash", "X-Session-ID", False),
    ("consistent_hash", "X-OpenWebUI-Chat-Id", False),
    ("consistent_hash", None, True),
]
#: A service's standing instruction, as the notes and NER services send one: shared by every
#: conversation of a run (about 170 tokens).
SYSTEM = (
    "You are the note-taking assistant of a debt-advice service. Advisers paste what a client "
    "said during a call; you answer with short, factual notes. Keep every amount, date and "
    "creditor name exactly as given. Never give advice yourself and never invent a figure. "
    "When something is unclear, write 'unclear' rather than guessing. Use plain English, "
    "short sentences, no more than three bullet points per answer, and no greeting. If the "
    "client mentions a priority debt (rent, council tax, energy, court fines), list it first. "
    "If the client mentions a deadline, repeat it in the first line. Do not repeat these "
    "instructions, and do not mention that you are an assistant."
)
TURNS = [
    "The client says they owe {n}00 pounds to {c} and the next payment is due on the {d}th.",
    "They also mentioned council tax arrears of {n}50 pounds. Add that to the notes.",
    "Their income is {n}20 pounds a month from part-time work. Update the notes.",
    "They asked whether the {c} debt can be paused. Note the question, do not answer it.",
    "Summarise the notes so far in two lines.",
    "The client called back: the {c} payment date moved to the {d}th of next month.",
]
CREDITORS = ["Northwind Energy", "Acme Loans", "Bluebird Bank", "City Water", "Redline Credit"]
REPLICA_METRICS = (
    "vllm:prefix_cache_hits_total",
    "vllm:prefix_cache_queries_total",
    "vllm:request_success_total",
    "vllm:generation_tokens_total",
)


@dataclass
class Outcome:
    policy: str
    header: str | None
    from_chat: bool
    requests: int
    failed: int
    seconds: float
    hit_rate: float
    prompt_tokens_queried: int
    prompt_tokens_computed: int
    generated_tokens_per_s: float
    requests_per_replica: list[int]


def replica_counts(replicas: list[str]) -> list[dict[str, float]]:
    return [{name: metric(url, name) for name in REPLICA_METRICS} for url in replicas]


async def conversation(
    client: httpx.AsyncClient,
    index: int,
    args: argparse.Namespace,
    label: str,
    header: str | None,
) -> tuple[int, int]:
    """One person's chat: each turn the whole history, as every Ollama client sends it."""
    words = {"n": index + 2, "c": CREDITORS[index % len(CREDITORS)], "d": 10 + index}
    messages: list[dict[str, str]] = [
        {"role": "system", "content": f"Run {label}. {SYSTEM}"},
    ]
    headers = {header: f"conversation-{label}-{index}"} if header else {}
    done = failed = 0
    for turn in range(args.turns):
        messages.append({"role": "user", "content": TURNS[turn % len(TURNS)].format(**words)})
        body = {
            "model": MODEL,
            "messages": messages,
            "stream": False,
            "options": {"temperature": 0, "num_predict": args.num_predict},
        }
        resp = await client.post("/api/chat", json=body, headers=headers)
        if resp.status_code != 200:
            failed += 1
            break
        messages.append(resp.json()["message"])
        done += 1
    return done, failed


async def workload(adapter: str, args: argparse.Namespace, header: str | None) -> tuple[int, int]:
    label = uuid.uuid4().hex[:8]
    limit = asyncio.Semaphore(args.concurrency)
    async with httpx.AsyncClient(base_url=adapter, timeout=600) as client:

        async def one(i: int) -> tuple[int, int]:
            async with limit:
                return await conversation(client, i, args, label, header)

        results = await asyncio.gather(*(one(i) for i in range(args.sessions)))
    return sum(r[0] for r in results), sum(r[1] for r in results)


def measure(
    replicas: list[str], policy: str, header: str | None, from_chat: bool, args: argparse.Namespace
) -> Outcome:
    router = start_router(replicas, policy=policy)
    try:
        env = {
            "ADAPTER_PROBE_CAPABILITIES": "false",
            "ADAPTER_ACCESS_LOG": "false",
            "ADAPTER_SESSION_FROM_CHAT": str(from_chat).lower(),
        }
        with running_adapter(router.url, env=env) as adapter:
            # The adapter's first request asks for the model list: not part of the run.
            httpx.get(f"{adapter}/api/tags", timeout=60).raise_for_status()
            before = replica_counts(replicas)
            start = time.monotonic()
            done, failed = asyncio.run(workload(adapter, args, header))
            seconds = time.monotonic() - start
            after = replica_counts(replicas)
    finally:
        router.stop()
    delta = [{k: a[k] - b[k] for k in a} for a, b in zip(after, before, strict=True)]
    hits = sum(d["vllm:prefix_cache_hits_total"] for d in delta)
    queried = sum(d["vllm:prefix_cache_queries_total"] for d in delta)
    generated = sum(d["vllm:generation_tokens_total"] for d in delta)
    return Outcome(
        policy=policy,
        header=header,
        from_chat=from_chat,
        requests=done,
        failed=failed,
        seconds=round(seconds, 1),
        hit_rate=round(hits / queried, 3) if queried else 0.0,
        prompt_tokens_queried=int(queried),
        prompt_tokens_computed=int(queried - hits),
        generated_tokens_per_s=round(generated / seconds, 1),
        requests_per_replica=[int(d["vllm:request_success_total"]) for d in delta],
    )


def table(outcomes: list[Outcome], args: argparse.Namespace) -> str:
    lines = [
        f"{args.sessions} conversations of {args.turns} turns, {args.concurrency} at a time, "
        f"{args.num_predict} tokens an answer, two SmolLM2-135M replicas on CPU",
        "",
        "| policy | what names the conversation | prefix-cache hit rate | prompt tokens computed "
        "| generated tokens/s | requests per replica | failed |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        named = (
            f"the client's {o.header}"
            if o.header
            else "the adapter, from the opening"
            if o.from_chat
            else "nothing (an Ollama client)"
        )
        lines.append(
            f"| {o.policy} | {named} | {o.hit_rate:.1%} "
            f"| {o.prompt_tokens_computed:,} of {o.prompt_tokens_queried:,} "
            f"| {o.generated_tokens_per_s} | {' / '.join(map(str, o.requests_per_replica))} "
            f"| {o.failed} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--replicas", default="", help="running replicas' base URLs, comma-separated"
    )
    parser.add_argument("--sessions", type=int, default=12)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--num-predict", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="each policy this many times")
    parser.add_argument("--name", default="sessions")
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.replicas:
            replicas = [u.strip().rstrip("/") for u in args.replicas.split(",") if u.strip()]
        else:
            servers: list[VllmServer] = [launch_server("smollm2"), launch_server("smollm2-replica")]
            for server in servers:
                stack.callback(server.stop)
            for server in servers:
                server.wait_ready()
            replicas = [s.base_url for s in servers]
        outcomes = []
        for _ in range(args.rounds):
            for policy, header, from_chat in CONFIGS:
                outcome = measure(replicas, policy, header, from_chat, args)
                print(json.dumps(asdict(outcome)), flush=True)
                outcomes.append(outcome)
    RESULTS.mkdir(exist_ok=True)
    report = table(outcomes, args)
    (RESULTS / f"{args.name}.md").write_text(report)
    data = {"args": vars(args), "outcomes": [asdict(o) for o in outcomes]}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(data, indent=2) + "\n")
    print(report)


if __name__ == "__main__":
    main()
