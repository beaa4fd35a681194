"""Admission control: at most ``limit`` requests at a time go to one upstream server, at most
``queue`` more wait for a turn, and the rest are refused at once with Ollama's busy answer.

Ollama bounds its queue the same way (``OLLAMA_MAX_QUEUE``) and clients retry on its 503. A
request waiting for a turn that is cancelled (its client left) leaves the queue, and a turn
it was just given passes to the next in line. Nothing here knows what a request is: the
upstream layer takes a turn before it sends and gives it back when the answer is done.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from adapter.config import Settings
from adapter.errors import OllamaError
from adapter.metrics import Metrics

#: Ollama's words (server.ErrMaxQueue), two spaces included: clients match on them.
BUSY = "server busy, please try again.  maximum pending requests exceeded"


class Busy(OllamaError):
    """Every turn is taken and the queue is full."""

    def __init__(self) -> None:
        super().__init__(503, BUSY)


class Admission:
    """Turns for one upstream server: ``limit`` at once, ``queue`` waiting."""

    def __init__(
        self,
        limit: int,
        queue: int,
        *,
        on_change: Callable[[int, int], None] | None = None,
        on_reject: Callable[[], None] | None = None,
    ) -> None:
        self.limit = limit
        self.queue = queue
        self.running = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._on_change = on_change
        self._on_reject = on_reject

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.running, len(self._waiting))

    async def enter(self) -> None:
        """Take a turn, waiting for one if all are taken; ``Busy`` when the queue is full."""
        if self.running < self.limit and not self._waiting:
            self.running += 1
            self._changed()
            return
        if len(self._waiting) >= self.queue:
            if self._on_reject is not None:
                self._on_reject()
            raise Busy
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        self._changed()
        try:
            await turn  # a turn handed over by leave(): ``running`` already counts it
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.leave()  # given a turn it will not use: the next one gets it
            elif turn in self._waiting:  # leave() may have passed over it already
                self._waiting.remove(turn)
                self._changed()
            raise

    def leave(self) -> None:
        """Give a turn back: the first one waiting gets it."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                self._changed()
                return
        self.running -= 1
        self._changed()


def admission_for(backend: str, settings: Settings, metrics: Metrics) -> Admission:
    """The admission control of one backend, with this worker's share of the limits."""
    changed, rejected = metrics.admission(backend)
    return Admission(
        settings.per_worker(settings.max_concurrent),
        settings.per_worker(settings.max_queue),
        on_change=changed,
        on_reject=rejected,
    )
