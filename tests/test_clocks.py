"""Takeover without trusting clocks, the skew bound, and fences that survive deletion."""

from __future__ import annotations

import anyio
import pytest
from support import Backend, new_manager

from aiolease import LeaseHeldError, LeaseLostError
from aiolease.store import Store
from aiolease.testing import SkewedClock


async def test_the_wall_clock_rule_frees_a_lease_skew_bound_after_expiry(
    store: Store, key: str
) -> None:
    skew = 0.5
    holder = new_manager(store, max_clock_skew=skew)
    # The contender has never seen the record before, so only the wall-clock rule applies.
    lease = await holder.acquire(key, ttl=0.4, timeout=0)
    await anyio.sleep(0.4 + 0.1)
    contender = new_manager(store, max_clock_skew=skew)
    with pytest.raises(LeaseHeldError) as caught:
        await contender.acquire(key, timeout=0)  # expired, but not by skew yet
    assert 0 < caught.value.retry_after <= skew
    await anyio.sleep(caught.value.retry_after + 0.05)
    taken = await contender.acquire(key, timeout=0)
    assert taken.fence > lease.fence
    await contender.release(taken)


async def test_a_contender_whose_clock_runs_behind_waits_the_observed_duration(
    store: Store, key: str
) -> None:
    ttl = 0.8
    holder = new_manager(store, max_clock_skew=0.1)
    # An hour behind: the wall-clock rule would never fire; the version rule does.
    behind = new_manager(store, max_clock_skew=0.1, wall_clock=SkewedClock(-3600))
    lease = await holder.acquire(key, ttl=ttl, timeout=0)  # never refreshed
    started = anyio.current_time()
    taken = await behind.acquire(key, ttl=ttl, timeout=10 * ttl)
    waited = anyio.current_time() - started
    # It waited the record's full duration from its own first sight of the version.
    assert ttl <= waited <= ttl + 1.0
    assert taken.fence > lease.fence
    await behind.release(taken)


async def test_a_refreshed_lease_resets_the_version_rule(store: Store, key: str) -> None:
    ttl = 0.9
    holder = new_manager(store)
    behind = new_manager(store, wall_clock=SkewedClock(-3600))
    outcome: list[str] = []

    async def contend() -> None:
        try:
            await behind.acquire(key, ttl=ttl, timeout=3 * ttl)
        except LeaseHeldError:
            outcome.append("held")
        else:
            outcome.append("taken")

    async with holder.lease(key, ttl=ttl) as lease, anyio.create_task_group() as tg:
        tg.start_soon(contend)
        await anyio.sleep(3 * ttl + 0.5)
        lease.ensure_held()  # every refresh wrote a new version, so the waiter kept waiting
    assert outcome == ["held"]


async def test_a_holder_whose_clock_runs_behind_cannot_block_others_longer_than_its_lease(
    store: Store, key: str
) -> None:
    ttl = 0.8
    # The holder's clock is an hour behind, so its stored expiry is long past: others may
    # take over at once by their clocks. That is outside the skew bound (not promised), yet
    # fences still increase and the holder learns of it at its next heartbeat.
    holder = new_manager(store, wall_clock=SkewedClock(-3600))
    other = new_manager(store)
    with pytest.raises(LeaseLostError) as caught:
        async with holder.lease(key, ttl=ttl) as lease:
            taken = await other.acquire(key, ttl=10, timeout=0)
            assert taken.fence > lease.fence
            await anyio.sleep(ttl)
    assert caught.value.reason == "taken"
    assert not lease.held
    await other.release(taken)


async def test_a_clock_jump_does_not_shorten_or_stretch_the_holders_deadline(
    store: Store, key: str
) -> None:
    clock = SkewedClock()
    manager = new_manager(store, wall_clock=clock, safety_margin=0.1)
    lease = await manager.acquire(key, ttl=1.0, timeout=0)
    remaining = lease.remaining
    clock.jump(+600)
    assert lease.remaining <= remaining
    assert lease.remaining > remaining - 0.1  # measured on the monotonic clock only
    clock.jump(-1200)
    await anyio.sleep(1.0)
    assert not lease.held
    await manager.release(lease)


async def test_the_fence_keeps_increasing_after_the_item_is_deleted(
    backend: Backend, key: str
) -> None:
    # The counter is seeded from the wall clock (microseconds) when the item is missing.
    # Assumption: whoever re-seeds after a deletion reads a clock later than the one that
    # seeded the deleted counter. Here the first holder seeded ten minutes ago, and the
    # contender's clock runs 30 s behind real time.
    first = new_manager(backend.client, backend.table, wall_clock=SkewedClock(-600))
    behind = new_manager(backend.client, backend.table, wall_clock=SkewedClock(-30))
    fences = []
    for _ in range(3):
        lease = await first.acquire(key, timeout=0)
        fences.append(lease.fence)
        await first.release(lease)

    await backend.client.delete_item(TableName=backend.table, Key={"pk": {"S": key}})

    lease = await behind.acquire(key, timeout=0)
    assert lease.fence > max(fences)
    await behind.release(lease)


async def test_a_holder_finds_its_deleted_item_and_stops(backend: Backend, key: str) -> None:
    manager = new_manager(backend.client, backend.table)
    with pytest.raises(LeaseLostError, match="item is gone") as caught:
        async with manager.lease(key, ttl=0.9):
            await backend.client.delete_item(TableName=backend.table, Key={"pk": {"S": key}})
            await anyio.sleep(5)
    assert caught.value.reason == "deleted"
