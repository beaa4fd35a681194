"""The adapter a team writes first: FastAPI + httpx, the straightforward translation.

The benchmark matrix measures it beside the adapter, in the same run, on the same CPU and
against the same fake vLLM, so "N times the naive adapter" is a measured ratio. It answers
what the load generator checks (``/api/chat`` streaming and not, ``/api/tags``) the way such
code usually does: a non-streaming chat asks vLLM for one JSON answer (``stream: false``), a
streaming one relays vLLM's SSE line by line through ``httpx``'s ``aiter_lines``, each event
decoded with ``json`` and each NDJSON line encoded with it. It checks nothing else and is
not part of the product.

    .venv/bin/python -m benchmarks.naive_adapter --port 11435 --vllm-url http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def create_app(vllm_url: str) -> FastAPI:
    client: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        client["c"] = httpx.AsyncClient(base_url=vllm_url, timeout=600, limits=limits)
        yield
        await client["c"].aclose()

    app = FastAPI(lifespan=lifespan)

    def now() -> str:
        return datetime.now(UTC).isoformat().replace("+00:00", "Z")

    @app.get("/")
    async def root() -> str:
        return "Ollama is running"

    @app.get("/api/tags")
    async def tags() -> dict[str, Any]:
        models = (await client["c"].get("/v1/models")).json()["data"]
        return {
            "models": [
                {
                    "name": m["id"],
                    "model": m["id"],
                    "modified_at": now(),
                    "size": 0,
                    "digest": "",
                    "details": {"format": "safetensors", "family": "llama"},
                }
                for m in models
            ]
        }

    @app.post("/api/chat")
    async def chat(request: Request) -> Any:
        req = await request.json()
        body: dict[str, Any] = {"model": req["model"], "messages": req["messages"]}
        options = req.get("options") or {}
        if "num_predict" in options:
            body["max_tokens"] = options["num_predict"]
        for key in ("temperature", "top_p", "top_k", "seed", "stop"):
            if key in options:
                body[key] = options[key]
        start = time.perf_counter_ns()
        if req.get("stream") is False:
            body["stream"] = False
            out = (await client["c"].post("/v1/chat/completions", json=body)).json()
            choice = out["choices"][0]
            usage = out.get("usage") or {}
            took = time.perf_counter_ns() - start
            return JSONResponse(
                {
                    "model": req["model"],
                    "created_at": now(),
                    "message": {"role": "assistant", "content": choice["message"]["content"]},
                    "done": True,
                    "done_reason": choice["finish_reason"],
                    "total_duration": took,
                    "prompt_eval_count": usage.get("prompt_tokens", 0),
                    "eval_count": usage.get("completion_tokens", 0),
                    "eval_duration": took,
                }
            )
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}

        async def lines() -> AsyncIterator[bytes]:
            reason = None
            usage: dict[str, Any] = {}
            async with client["c"].stream("POST", "/v1/chat/completions", json=body) as resp:
                async for line in resp.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line[6:]
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    if not chunk.get("choices"):
                        continue
                    choice = chunk["choices"][0]
                    reason = choice.get("finish_reason") or reason
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        line_out = {
                            "model": req["model"],
                            "created_at": now(),
                            "message": {"role": "assistant", "content": content},
                            "done": False,
                        }
                        yield (json.dumps(line_out) + "\n").encode()
            took = time.perf_counter_ns() - start
            last = {
                "model": req["model"],
                "created_at": now(),
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": reason,
                "total_duration": took,
                "prompt_eval_count": usage.get("prompt_tokens", 0),
                "eval_count": usage.get("completion_tokens", 0),
                "eval_duration": took,
            }
            yield (json.dumps(last) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=11435)
    p.add_argument("--vllm-url", required=True)
    a = p.parse_args()
    uvicorn.run(create_app(a.vllm_url), host=a.host, port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
