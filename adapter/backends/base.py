"""What every backend offers the routes: the ``Backend`` protocol and the shapes of its replies.

A backend either translates Ollama requests for another API (vLLM) or passes them through to
a real Ollama; the routes never ask which: they hand the parsed request over and send back
what comes (an Ollama answer (a dict), a stream of NDJSON bytes, or an upstream answer relayed
as it came, ``Relayed``), and what differs between servers the protocol answers (``essential``,
``derives``, ``title``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from adapter.framing import Framing
from adapter.ollama_api.models import ModelEntry
from adapter.ollama_api.requests import (
    ChatRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
)


class ByteStream(Protocol):
    """A streamed answer's bytes (Ollama's NDJSON, or another API's SSE relayed): what every
    stream a backend hands the routes offers.

    Iterating yields the bytes to send as they come. A stream that knows a chunk is its last
    sets ``ended`` before yielding it, so the end of the body leaves in the same write; it may
    go on (to finish reading the upstream) after, and what it yields then is not sent. One
    that cannot tell leaves ``ended`` false and the body ends when iteration does.
    ``error_event`` is the stream's own last message saying why it ends early (an NDJSON
    error line, an SSE error event), for a stream the server has to end (its shutdown grace is
    over). ``aclose`` lets go of the upstream: an unfinished request is abandoned there.
    """

    ended: bool

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def error_event(self, message: str) -> bytes: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Relayed:
    """An upstream answer passed on as the upstream gave it: status, type, bytes or a stream."""

    status: int
    content_type: str
    body: bytes | ByteStream


#: What a backend answers: an Ollama answer object, an NDJSON stream, or a relayed answer.
Reply = Mapping[str, Any] | ByteStream | Relayed


class Backend(Protocol):
    """One upstream server and the models it serves."""

    #: ``vllm`` (``vllm-2``, ... for more servers) or ``ollama``: labels, ``owned_by``.
    name: str

    @property
    def kind(self) -> Literal["vllm", "ollama"]:
        """What it is: the key ``/health`` shows it under."""
        ...

    @property
    def title(self) -> str:
        """How messages to people name it ("vLLM", "the Vision Ollama")."""
        ...

    @property
    def essential(self) -> bool:
        """Whether the adapter serves only while it answers (``/ready``, ``/health``'s status);
        the others add models when they are up."""
        ...

    @property
    def derives(self) -> bool:
        """Whether its models can be the ``FROM`` of a derived model (``/api/create``): the
        adapter applies a derived model's settings itself, so only where it translates."""
        ...

    #: Its URL as shown to people (credentials hidden).
    url: str

    async def models(self, *, refresh: bool = False) -> list[ModelEntry]:
        """The models it serves (the same list object while nothing changed)."""
        ...

    async def chat(self, req: ChatRequest, entry: ModelEntry, raw: bytes) -> Reply:
        """Answer ``/api/chat`` (``raw`` is the body as the client sent it)."""
        ...

    async def generate(self, req: GenerateRequest, entry: ModelEntry, raw: bytes) -> Reply:
        """Answer ``/api/generate``."""
        ...

    async def embed(self, req: EmbedRequest, entry: ModelEntry, raw: bytes) -> Reply:
        """Answer ``/api/embed``."""
        ...

    async def embeddings(self, req: EmbeddingsRequest, entry: ModelEntry, raw: bytes) -> Reply:
        """Answer the legacy ``/api/embeddings``."""
        ...

    async def show(
        self, entry: ModelEntry, raw: bytes, modified_at: datetime, basename: str | None
    ) -> Reply:
        """Answer ``/api/show`` (``basename``: what ``general.basename`` must say)."""
        ...

    async def passthrough(
        self,
        path: str,
        body: dict[str, Any],
        *,
        stream: bool,
        framing: Framing,
        rewrite: Sequence[tuple[bytes, bytes]] = (),
    ) -> Relayed:
        """Send a request of another API (OpenAI's or Anthropic's ``/v1/...``) on as it is;
        a streamed answer is relayed in ``framing``'s messages, with ``rewrite``'s byte
        strings replaced in a successful answer."""
        ...

    async def health(self) -> dict[str, Any]:
        """Whether it answers, and what it serves."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Target:
    """Where a model name leads: its entry and the backend that serves it."""

    entry: ModelEntry
    backend: Backend
