"""Every route under mangled bodies and headers: an answer in the route's own error shape,
never a 500, a traceback or FastAPI's ``{"detail": ...}``.

Hypothesis drives one app (against the fake vLLM) on a loop of the test's own; each example
is one request. The budget is bounded (``max_examples``), so the suite's time stays fixed;
``FUZZ_EXAMPLES`` raises it for a longer hunt.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.app import create_app
from adapter.config import Settings
from tests.fake_vllm import FakeVLLM

HI = [{"role": "user", "content": "hi"}]

#: A valid body for each route that takes one: the fuzz starts from these and breaks them.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/chat"): {"model": "tiny-llm", "messages": HI, "stream": False},
    ("POST", "/api/generate"): {"model": "tiny-llm", "prompt": "hi", "stream": False},
    ("POST", "/api/show"): {"model": "tiny-llm"},
    ("POST", "/api/pull"): {"model": "tiny-llm", "stream": False},
    ("POST", "/api/push"): {"model": "tiny-llm", "stream": False},
    ("POST", "/api/create"): {"model": "fz", "from": "tiny-llm", "stream": False},
    ("POST", "/api/copy"): {"source": "tiny-llm", "destination": "fz2"},
    ("DELETE", "/api/delete"): {"model": "fz2"},
    ("POST", "/api/embed"): {"model": "tiny-llm", "input": "hi"},
    ("POST", "/api/embeddings"): {"model": "tiny-llm", "prompt": "hi"},
    ("POST", "/v1/chat/completions"): {"model": "tiny-llm", "messages": HI},
    ("POST", "/v1/completions"): {"model": "tiny-llm", "prompt": "hi"},
    ("POST", "/v1/responses"): {"model": "tiny-llm", "input": "hi"},
    ("POST", "/v1/embeddings"): {"model": "tiny-llm", "input": "hi"},
    ("POST", "/v1/messages"): {"model": "tiny-llm", "max_tokens": 8, "messages": HI},
    ("POST", "/v1/messages/count_tokens"): {"model": "tiny-llm", "messages": HI},
    ("POST", "/api/blobs/sha256:" + "0" * 64): {},
}
#: Routes without a body, and paths no route serves.
BARE = [
    ("GET", "/"),
    ("HEAD", "/"),
    ("GET", "/api/version"),
    ("GET", "/api/tags"),
    ("GET", "/api/ps"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/tiny-llm"),
    ("HEAD", "/api/blobs/sha256:" + "0" * 64),
    ("GET", "/api/nothing"),
    ("PATCH", "/api/chat"),
    ("GET", "/v1/nothing"),
]

#: What Ollama's Gin answers, in plain text, where no route serves a path or a method.
GIN_ANSWERS = {(404, "404 page not found"), (405, "405 method not allowed")}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


@st.composite
def mangled(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """The valid body with keys dropped, retyped or added; or any JSON; or any bytes."""
    how = draw(st.sampled_from(["retype", "drop", "add", "json", "bytes", "cut", "stream"]))
    body = dict(base)
    if how == "stream":
        body["stream"] = True
        if body:
            body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    elif how == "retype" and body:
        body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    elif how == "drop" and body:
        body.pop(draw(st.sampled_from(sorted(body))))
    elif how == "add":
        key = draw(
            st.sampled_from(
                [
                    "options",
                    "format",
                    "tools",
                    "images",
                    "think",
                    "stream",
                    "keep_alive",
                    "template",
                    "raw",
                    "suffix",
                    "stop",
                    "max_tokens",
                    "system",
                    "tool_choice",
                    "logprobs",
                    "x",
                ]
            )
        )
        body[key] = draw(json_values)
    elif how == "json":
        return json.dumps(draw(json_values)).encode()
    elif how == "bytes":
        return draw(st.binary(max_size=64))
    elif how == "cut":
        raw = json.dumps(body).encode()
        return raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    return json.dumps(body, allow_nan=True).encode()


headers = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(
            ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "x/y"]
        ),
        "authorization": st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
        "x-request-id": st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
        "origin": st.sampled_from(["http://localhost", "https://evil.example", "null"]),
        "accept": st.sampled_from(["*/*", "text/event-stream", "application/json"]),
    },
)

requests = st.one_of(
    st.sampled_from(sorted(BODIES)).flatmap(
        lambda route: st.tuples(st.just(route), mangled(BODIES[route]), headers)
    ),
    st.tuples(st.sampled_from(BARE), st.just(b""), headers),
)


def assert_in_shape(path: str, resp: httpx.Response) -> None:
    assert resp.status_code < 500 or resp.status_code == 501, resp.text
    if resp.headers.get("content-type", "").startswith("application/x-ndjson"):
        lines = [json.loads(line) for line in resp.text.splitlines() if line]
        assert lines and all(isinstance(line, dict) for line in lines), resp.text
        last = lines[-1]
        ended = last.get("done") is True or last.get("status") == "success"  # or progress's
        assert ended or isinstance(last.get("error"), str), resp.text
    if resp.status_code < 400 or resp.request.method == "HEAD":
        return
    text = resp.text
    assert "Traceback" not in text
    if resp.headers.get("content-type", "").startswith("text/plain"):
        # Gin's own answers, as Ollama gives them, for a path or method no route serves.
        assert (resp.status_code, text) in GIN_ANSWERS, text
        return
    if resp.status_code == 403 and "origin" in resp.request.headers:
        assert text == "", text  # an origin refused: Gin's CORS answers with no body
        return
    body = resp.json()
    assert isinstance(body, dict) and "detail" not in body, text
    if path.startswith("/v1/messages"):
        assert body["type"] == "error" and isinstance(body["error"]["message"], str), text
    elif path.startswith("/v1/"):
        assert isinstance(body["error"]["message"], str), text
    else:
        assert isinstance(body["error"], str) and body["error"], text


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_no_request_gets_a_500_a_traceback_or_a_foreign_shape(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    fake = FakeVLLM()
    app_settings = Settings(
        vllm_url=loop.run_until_complete(fake.url()),
        models_dir=str(tmp_path),
        max_body_bytes=4096,
    )
    app = create_app(app_settings)
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a")

    @settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
    )
    @given(requests)
    def one(request: tuple[tuple[str, str], bytes, dict[str, str]]) -> None:
        (method, path), body, head = request
        resp = loop.run_until_complete(
            client.request(method, path, content=body or None, headers=head, timeout=10)
        )
        assert_in_shape(path, resp)

    try:
        one()
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.run_until_complete(fake.stop())
