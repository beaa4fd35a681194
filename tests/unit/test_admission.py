"""Admission turns and the bounded queue, step by step on one event loop."""

from __future__ import annotations

import asyncio

import pytest

from adapter.admission import BUSY, Admission, Busy


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_turns_then_queue_then_busy_in_order() -> None:
    seen: list[tuple[int, int]] = []
    rejected: list[int] = []
    gate = Admission(
        1, 1, on_change=lambda r, w: seen.append((r, w)), on_reject=lambda: rejected.append(1)
    )
    await gate.enter()
    second = asyncio.create_task(gate.enter())
    await settle()
    assert (gate.running, gate.waiting) == (1, 1)
    with pytest.raises(Busy) as busy:
        await gate.enter()
    assert (busy.value.status, busy.value.message, rejected) == (503, BUSY, [1])
    gate.leave()  # the turn passes to the one waiting: running stays 1
    await second
    assert (gate.running, gate.waiting) == (1, 0)
    gate.leave()
    assert (gate.running, gate.waiting) == (0, 0)
    assert seen == [(1, 0), (1, 1), (1, 0), (0, 0)]


async def test_a_waiter_that_is_cancelled_leaves_the_queue() -> None:
    gate = Admission(1, 4)
    await gate.enter()
    waiter = asyncio.create_task(gate.enter())
    later = asyncio.create_task(gate.enter())
    await settle()
    waiter.cancel()
    await settle()
    assert (gate.running, gate.waiting) == (1, 1)
    gate.leave()
    await later  # the next in line got the turn, not the one that left
    assert (gate.running, gate.waiting) == (1, 0)


async def test_a_turn_given_to_a_waiter_being_cancelled_passes_on() -> None:
    gate = Admission(1, 4)
    await gate.enter()
    waiter = asyncio.create_task(gate.enter())
    later = asyncio.create_task(gate.enter())
    await settle()
    gate.leave()  # the turn goes to ``waiter``...
    waiter.cancel()  # ...which is cancelled before it runs again
    await settle()
    await later
    assert waiter.cancelled()
    assert (gate.running, gate.waiting) == (1, 0)


async def test_a_waiter_cancelled_then_passed_over_unwinds_cleanly() -> None:
    """Cancelled, then a leave() in the same loop step skips its future before it unwinds."""
    gate = Admission(1, 4)
    await gate.enter()
    waiter = asyncio.create_task(gate.enter())
    await settle()
    waiter.cancel()  # cancels the future it waits on at once; the task unwinds later
    gate.leave()
    await settle()
    assert waiter.cancelled()
    assert (gate.running, gate.waiting) == (0, 0)
    await gate.enter()  # and the turns still count right
    assert gate.running == 1
