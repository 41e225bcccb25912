"""Named failure scenarios, each a story a user of a lease library has lived through."""

from __future__ import annotations

import math

import anyio
import pytest
from support import Backend, new_manager

from aiolease import LeaseHeldError, LeaseLostError, LeaseManager
from aiolease.store import Store
from aiolease.testing import FaultyClient, FaultyStore, latency, unavailable


async def test_release_racing_an_in_flight_heartbeat(store: Store, key: str) -> None:
    faulty = FaultyStore(store)
    async with new_manager(faulty) as manager:
        lease = await manager.acquire(key, ttl=0.9)
        # The next refresh is slow; release is called while it is in flight.
        faulty.plan("refresh", latency(0.3), times=1)
        await anyio.sleep(0.3 + 0.1)
        assert [c.outcome for c in faulty.calls_of("refresh")][-1] == "pending"
        assert await manager.release(lease) is True
        await anyio.sleep(0.9)  # no heartbeat revives it
    assert await manager.get(key) is None
    assert not lease.held


async def test_throttling_longer_than_the_ttl_stops_the_holder_at_its_deadline(
    store: Store, key: str
) -> None:
    faulty = FaultyStore(store)
    ttl, margin = 0.9, 0.2
    manager = new_manager(faulty, safety_margin=margin)
    with pytest.raises(LeaseLostError) as caught:
        async with manager.lease(key, ttl=ttl):
            started = anyio.current_time()
            faulty.plan("refresh", unavailable(), probability=1.0)
            try:
                await anyio.sleep(10 * ttl)
            finally:
                stopped = anyio.current_time()
    faulty.clear()
    assert caught.value.reason == "expired"
    assert stopped - started <= ttl - margin + 0.25
    assert len(faulty.calls_of("refresh")) > 2  # it kept trying until the deadline


async def test_the_body_exception_wins_over_a_simultaneous_loss(store: Store, key: str) -> None:
    manager = new_manager(store)
    operator = new_manager(store)
    with pytest.raises(RuntimeError, match="cleanup failed") as caught:
        async with manager.lease(key, ttl=0.9) as lease:
            await operator.break_lease(key)
            try:
                await anyio.sleep(10)
            finally:
                raise RuntimeError("cleanup failed")
    # The loss is not hidden: the lease says why it ended.
    assert lease.lost is not None
    assert lease.lost.reason == "released"
    assert caught.value.__context__ is not None


async def test_an_item_deleted_by_hand_while_free_keeps_the_fence_rising(
    backend: Backend, key: str
) -> None:
    manager = new_manager(backend.client, backend.table)
    lease = await manager.acquire(key, timeout=0)
    await manager.release(lease)
    await backend.client.delete_item(TableName=backend.table, Key={"pk": {"S": key}})
    again = await manager.acquire(key, timeout=0)
    assert again.fence > lease.fence
    await manager.release(again)


@pytest.mark.backends("ddblocal")
async def test_a_hundred_contenders_at_expiry_have_exactly_one_winner(
    backend: Backend, key: str
) -> None:
    ttl, poll, contenders = 1.0, 0.1, 100
    holder = new_manager(backend.client, backend.table, owner="holder")
    winners: list[tuple[str, int]] = []
    window = ttl + 2.0

    async def contend(manager: LeaseManager) -> None:
        try:
            won = await manager.acquire(key, ttl=30, timeout=window)
        except LeaseHeldError:
            return
        winners.append((manager.owner, won.fence))

    # A hundred hosts have a hundred connections: give the shared client as many.
    async with backend.new_client(max_pool_connections=contenders) as shared:
        client = FaultyClient(shared)
        managers = [
            new_manager(client, backend.table, owner=f"c{i}", poll_interval=poll)
            for i in range(contenders)
        ]
        for manager in managers:
            await manager.get(key)  # the one-time DescribeTable check, before counting
        lease = await holder.acquire(key, ttl=ttl, timeout=0)  # never refreshed: expires
        client.calls.clear()
        async with anyio.create_task_group() as tg:
            for manager in managers:
                tg.start_soon(contend, manager)
    assert len(winners) == 1
    assert winners[0][1] > lease.fence
    requests = len(client.calls_of("update_item")) + len(client.calls_of("get_item"))
    bound = contenders * math.ceil(window / poll) * 1.5
    assert requests <= bound, f"{requests} requests for one grant (bound {bound:.0f})"
