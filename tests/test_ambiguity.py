"""Writes a store applied but whose answer was lost, and requests that never finish.

The faults are injected at the store seam (`FaultyStore`), so each test runs on every
store. Faults only a DynamoDB client shows (botocore's errors, answers dropped below the
SDK's retries) are in ``test_dynamodb_faults.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from support import ATOMIC, TTL, new_manager

from aiolease import LeaseHeldError, LeaseLostError, LeaseStoreError
from aiolease.store import Store
from aiolease.testing import (
    Fault,
    FaultContext,
    FaultyStore,
    Perform,
    SkewedClock,
    hang,
    latency,
    lose_answer,
    unavailable,
)


def answer_lost(ctx: FaultContext) -> LeaseStoreError:
    """The error a store raises when the answer to an applied write was lost."""
    return LeaseStoreError(
        f"{ctx.operation}: the answer was lost",
        operation=ctx.operation,
        transient=True,
        maybe_applied=True,
    )


async def test_an_acquire_whose_answer_was_lost_still_gets_the_lease(
    store: Store, key: str
) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    faulty.plan("acquire", lose_answer(), times=1)
    started = anyio.current_time()

    lease = await manager.acquire(key, timeout=5)

    # It did not wait out its own lease: the retry recognised our own token.
    assert anyio.current_time() - started < TTL
    assert lease.held
    info = await manager.get(key)
    assert info is not None
    assert info.fence == lease.fence
    outcomes = [c.outcome for c in faulty.calls if c.operation == "acquire"]
    assert outcomes[0] != "ok"
    await manager.release(lease)


async def test_a_refresh_whose_answer_was_lost_keeps_the_lease(store: Store, key: str) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    lease = await manager.acquire(key, timeout=0)
    faulty.plan("refresh", lose_answer(), times=1)
    await manager.refresh(lease)
    assert lease.held
    await manager.refresh(lease)
    assert await manager.release(lease) is True


async def test_a_release_whose_answer_was_lost_reports_released(store: Store, key: str) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    lease = await manager.acquire(key, timeout=0)
    faulty.plan("release", lose_answer(), times=1)
    assert await manager.release(lease) is True
    assert await manager.get(key) is None


async def test_a_retried_release_never_touches_the_next_holders_lease(
    store: Store, key: str
) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    successor_manager = new_manager(store, owner="successor")
    lease = await manager.acquire(key, timeout=0)
    successor = None

    async def drop_then_let_someone_in(perform: Perform, ctx: FaultContext) -> Any:
        nonlocal successor
        await perform()
        successor = await successor_manager.acquire(key, timeout=0)
        raise answer_lost(ctx)

    faulty.plan("release", _Custom(drop_then_let_someone_in), times=1)
    assert await manager.release(lease) is True  # our first attempt did apply
    assert successor is not None
    info = await successor_manager.get(key)
    assert info is not None
    assert (info.owner, info.fence) == ("successor", successor.fence)
    await successor_manager.release(successor)


class _Custom(Fault):
    """A one-off fault written inline by a test."""

    def __init__(self, function: Callable[[Perform, FaultContext], Awaitable[Any]]) -> None:
        self._function = function

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        return await self._function(perform, ctx)


async def test_a_cancelled_acquire_undoes_a_write_that_may_have_applied(
    store: Store, key: str
) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    faulty.plan("acquire", latency(5, after=True), times=1)  # applied, answer is slow

    with anyio.move_on_after(0.3):
        await manager.acquire(key, ttl=30)

    # The shielded undo released it: the key is free now, not in 30 s.
    assert await manager.get(key) is None
    other = new_manager(store)
    lease = await other.acquire(key, timeout=0)
    await other.release(lease)


async def test_an_acquire_answered_after_its_lease_ran_out_is_not_handed_out(
    store: Store, key: str
) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty, safety_margin=0.1)
    ttl = 0.6
    faulty.plan("acquire", latency(ttl + 0.1, after=True), times=1)
    started = anyio.current_time()

    lease = await manager.acquire(key, ttl=ttl, timeout=5)

    # The late grant was not handed out; the lease returned came from a later attempt.
    attempts = [c for c in faulty.calls if c.operation == "acquire"]
    assert len(attempts) >= 2
    assert anyio.current_time() - started >= ttl
    assert lease.remaining > 0
    assert lease.held
    await manager.release(lease)


async def test_a_timeout_that_ends_on_store_failures_raises_lease_store_error(
    store: Store, key: str
) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    await manager.get(key)
    faulty.plan("acquire", unavailable(), probability=1.0)
    with pytest.raises(LeaseStoreError) as caught:
        await manager.acquire(key, timeout=0.4)
    assert not isinstance(caught.value, LeaseHeldError)
    assert caught.value.transient
    assert caught.value.__cause__ is not None
    assert len(faulty.calls_of("acquire")) >= 3  # retried with backoff
    faulty.clear()


async def test_a_hung_store_does_not_stretch_a_finite_timeout(store: Store, key: str) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty, poll_interval=0.1, release_timeout=0.3)
    await manager.get(key)
    for operation in ("acquire", "revoke", "release"):  # every write
        faulty.plan(operation, hang(), probability=1.0)
    started = anyio.current_time()
    with pytest.raises(LeaseStoreError, match="no answer"):
        await manager.acquire(key, timeout=0.5)
    # The timeout, plus the shielded undo of the unanswered write (bounded by
    # release_timeout), plus scheduling slack.
    assert anyio.current_time() - started < 0.5 + 0.1 + 0.3 + 0.5
    faulty.clear()


def applied_then_lost(delay: float) -> Fault:
    """Apply the write, keep the caller waiting `delay`, then lose the answer."""

    async def fault(perform: Perform, ctx: FaultContext) -> Any:
        await perform()
        await anyio.sleep(delay)
        raise answer_lost(ctx)

    return _Custom(fault)


async def test_after_a_lost_acquire_answer_the_deadline_counts_from_the_first_attempt(
    store: Store, key: str
) -> None:
    faulty = FaultyStore(store)
    ttl, margin, lag = 2.0, 0.2, 0.5
    manager = new_manager(faulty, safety_margin=margin)
    await manager.get(key)
    faulty.plan("acquire", applied_then_lost(lag), times=1)
    first_sent = anyio.current_time()
    lease = await manager.acquire(key, ttl=ttl, timeout=5)
    # A waiter may have seen the version written by the first attempt at once.
    assert anyio.current_time() + lease.remaining <= first_sent + ttl - margin + 0.01
    await manager.release(lease)


async def test_after_a_lost_refresh_answer_the_deadline_counts_from_the_first_attempt(
    store: Store, key: str
) -> None:
    faulty = FaultyStore(store)
    ttl, margin, lag = 2.0, 0.2, 0.5
    manager = new_manager(faulty, safety_margin=margin)
    lease = await manager.acquire(key, ttl=ttl, timeout=0)
    faulty.plan("refresh", applied_then_lost(lag), times=1)
    first_sent = anyio.current_time()
    await manager.refresh(lease)
    assert anyio.current_time() + lease.remaining <= first_sent + ttl - margin + 0.01
    await manager.release(lease)


@ATOMIC
async def test_a_version_rule_takeover_never_overlaps_a_holder_after_lost_answers(
    store: Store, key: str
) -> None:
    ttl, margin = 1.5, 0.2
    faulty = FaultyStore(store)
    holder = new_manager(faulty, safety_margin=margin, heartbeat_interval=0.3)
    # Its clock is an hour behind: only the version rule can let it take over.
    waiter = new_manager(store, wall_clock=SkewedClock(-3600))
    taken_at: list[float] = []
    holder_end: list[float] = []

    async def wait_for_it() -> None:
        lease = await waiter.acquire(key, ttl=ttl, timeout=10 * ttl)
        taken_at.append(anyio.current_time())
        await waiter.release(lease)

    async with anyio.create_task_group() as tg:
        with pytest.raises(LeaseLostError):
            async with holder.lease(key, ttl=ttl) as lease:
                tg.start_soon(wait_for_it)
                # The next refresh applies but its answer is lost; the retry succeeds; then
                # the store stops answering the holder altogether.
                faulty.plan("refresh", applied_then_lost(0.5), times=1)
                await anyio.sleep(0.3 + 0.5 + 0.3)
                for operation in ("refresh", "release"):  # every write
                    faulty.plan(operation, hang(), probability=1.0)
                try:
                    await anyio.sleep(10 * ttl)
                finally:
                    holder_end.append(anyio.current_time())
                    assert lease.remaining == 0
    faulty.clear()
    assert taken_at
    assert holder_end[0] <= taken_at[0]


async def test_release_survives_a_plain_asyncio_cancellation(store: Store, key: str) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    lease = await manager.acquire(key, ttl=30, timeout=0)
    faulty.plan("release", latency(0.3), times=1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await manager.release(lease)
    assert await manager.get(key) is None
    assert not lease.held


@pytest.mark.parametrize("cycles", [1, 3])
async def test_a_retried_release_is_recognised_after_other_holders_came_and_went(
    store: Store, key: str, cycles: int
) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    other = new_manager(store, owner="other")
    lease = await manager.acquire(key, timeout=0)

    async def apply_let_others_cycle_then_lose(perform: Perform, ctx: FaultContext) -> Any:
        await perform()  # our release applies...
        for _ in range(cycles):  # ...other holders come and go...
            theirs = await other.acquire(key, timeout=0)
            await other.release(theirs, data={"n": 1})
        raise answer_lost(ctx)  # ...and our answer is lost

    faulty.plan("release", _Custom(apply_let_others_cycle_then_lose), times=1)
    assert await manager.release(lease, data={"n": 1}) is True
    again = await other.acquire(key, timeout=0)
    assert again.data == {"n": 1}
    await other.release(again)
