"""Acquire, refresh, release, get, list and break: the basic contract on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest
from support import POLL, SKEW, TTL, Backend, new_manager

from aiolease import (
    LeaseHeldError,
    LeaseLostError,
    LeaseStoreError,
    LeaseTimeoutError,
    TableNotFoundError,
)
from aiolease.store import Store
from aiolease.testing import FaultyClient, FaultyStore


async def test_acquiring_a_free_key_is_one_conditional_update(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    await manager.get("warm-up")  # the one-time DescribeTable check happens here
    client.calls.clear()

    lease = await manager.acquire(key, timeout=0)

    assert [call.operation for call in client.calls] == ["update_item"]
    params = client.calls[0].params
    assert "ConditionExpression" in params
    assert params["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert lease.held
    assert lease.key == key
    assert lease.owner == manager.owner
    assert isinstance(lease.fence, int)
    assert 0 < lease.remaining <= TTL
    await manager.release(lease)


async def test_refresh_and_release_are_one_conditional_write_each(
    backend: Backend, key: str
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    lease = await manager.acquire(key, timeout=0)
    client.calls.clear()

    await manager.refresh(lease)
    assert [call.operation for call in client.calls] == ["update_item"]
    # Our token, and no later write of ours applied (a late refresh never rolls back).
    assert client.calls[0].params["ConditionExpression"] == "#tok = :tok AND #seq <= :seq"

    client.calls.clear()
    assert await manager.release(lease) is True
    assert [call.operation for call in client.calls] == ["update_item"]
    assert client.calls[0].params["ConditionExpression"] == "#tok = :tok"
    assert not lease.held


async def test_held_key_reports_holder_and_when_to_retry(store: Store, key: str) -> None:
    holder = new_manager(store, owner="holder")
    contender = new_manager(store, owner="contender")
    lease = await holder.acquire(key, timeout=0)

    with pytest.raises(LeaseHeldError) as caught:
        await contender.acquire(key, timeout=0)

    error = caught.value
    assert not isinstance(error, LeaseTimeoutError)
    assert error.key == key
    assert error.owner == "holder"
    assert error.expires_at == lease.expires_at
    assert error.expires_at.tzinfo is UTC
    assert 0 < error.retry_after <= TTL + SKEW
    await holder.release(lease)


async def test_two_tasks_of_one_manager_contend_like_two_hosts(store: Store, key: str) -> None:
    manager = new_manager(store)
    lease = await manager.acquire(key, timeout=0)
    with pytest.raises(LeaseHeldError):
        await manager.acquire(key, timeout=0)
    await manager.release(lease)


async def test_a_waiting_acquire_gets_the_key_when_it_is_released(store: Store, key: str) -> None:
    manager = new_manager(store)
    first = await manager.acquire(key, ttl=10, timeout=0)
    got = anyio.Event()

    async def wait_for_it() -> None:
        second = await manager.acquire(key, ttl=10, timeout=5)
        got.set()
        assert second.fence > first.fence
        await manager.release(second)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_it)
        await anyio.sleep(5 * POLL)
        assert not got.is_set()
        released_at = anyio.current_time()
        await manager.release(first)
        with anyio.fail_after(5):
            await got.wait()
        # Released keys are taken at the next poll, not at the lease's expiry.
        assert anyio.current_time() - released_at < 10 - 1


async def test_timeout_raises_lease_timeout_error_after_a_final_attempt(
    store: Store, key: str
) -> None:
    faulty = FaultyStore(store)
    holder = new_manager(store, owner="holder")
    contender = new_manager(faulty, poll_interval=0.3)
    lease = await holder.acquire(key, ttl=10, timeout=0)
    await contender.get(key)
    faulty.calls.clear()

    started = anyio.current_time()
    with pytest.raises(LeaseTimeoutError) as caught:
        await contender.acquire(key, ttl=10, timeout=0.5)
    elapsed = anyio.current_time() - started

    assert isinstance(caught.value, TimeoutError)
    assert caught.value.owner == "holder"
    assert elapsed >= 0.5
    # Attempts at 0, ~0.3 and a last one at the timeout itself.
    attempts = [c for c in faulty.calls if c.operation == "acquire"]
    assert len(attempts) >= 3
    await holder.release(lease)


async def test_release_keeps_the_item_its_fence_and_its_data(store: Store, key: str) -> None:
    manager = new_manager(store)
    first = await manager.acquire(key, data={"page": 1})
    assert first.data == {"page": 1}
    assert await manager.release(first)
    assert await manager.get(key) is None  # not held...
    second = await manager.acquire(key)  # ...but the item, fence and data survive
    assert second.fence > first.fence
    assert second.data == {"page": 1}
    await manager.release(second)


async def test_fence_strictly_increases_with_every_grant(store: Store, key: str) -> None:
    manager = new_manager(store)
    fences = []
    for _ in range(5):
        lease = await manager.acquire(key, timeout=0)
        fences.append(lease.fence)
        await manager.release(lease)
    assert fences == sorted(set(fences))


async def test_data_is_kept_unless_given_and_cleared_by_none(store: Store, key: str) -> None:
    manager = new_manager(store)
    lease = await manager.acquire(key, data={"v": 1})
    await manager.refresh(lease)
    assert lease.data == {"v": 1}
    await manager.refresh(lease, data=[1, "two", None])
    assert lease.data == [1, "two", None]
    info = await manager.get(key)
    assert info is not None
    assert info.data == [1, "two", None]
    await manager.release(lease, data={"done": True})
    assert lease.data == {"done": True}

    lease = await manager.acquire(key)
    assert lease.data == {"done": True}
    await manager.release(lease, data=None)
    lease = await manager.acquire(key)
    assert lease.data is None
    await manager.release(lease)


async def test_get_and_list_show_held_leases_only(store: Store, key: str) -> None:
    manager = new_manager(store, owner="lister")
    held = await manager.acquire(f"{key}:a", data="x")
    released = await manager.acquire(f"{key}:b")
    await manager.release(released)

    info = await manager.get(f"{key}:a")
    assert info is not None
    assert (info.key, info.owner, info.fence, info.data) == (f"{key}:a", "lister", held.fence, "x")
    assert info.expires_at == held.expires_at
    assert await manager.get(f"{key}:b") is None
    assert await manager.get(f"{key}:never") is None

    listed = [info async for info in manager.list(prefix=key)]
    assert [i.key for i in listed] == [f"{key}:a"]
    await manager.release(held)


async def test_list_pages_through_many_leases(backend: Backend, key: str) -> None:
    manager = new_manager(backend.client, backend.table)
    leases = [await manager.acquire(f"{key}:{i:03}") for i in range(30)]
    # Big data values push the scan over more than one page on every backend.
    listed = sorted([info.key async for info in manager.list(prefix=f"{key}:")])
    assert listed == [f"{key}:{i:03}" for i in range(30)]
    for lease in leases:
        await manager.release(lease)


async def test_expired_leases_are_not_held(store: Store, key: str) -> None:
    manager = new_manager(store)
    lease = await manager.acquire(key, ttl=0.3, timeout=0)
    await anyio.sleep(0.3 + SKEW + 0.1)
    assert not lease.held
    assert await manager.get(key) is None
    assert [i async for i in manager.list(prefix=key)] == []


async def test_release_of_a_taken_over_lease_returns_false_and_changes_nothing(
    store: Store, key: str
) -> None:
    old = new_manager(store, owner="old")
    new = new_manager(store, owner="new")
    stale = await old.acquire(key, ttl=0.3, timeout=0)
    await anyio.sleep(0.3 + SKEW + 0.05)
    current = await new.acquire(key, ttl=5, timeout=0)

    assert await old.release(stale) is False
    info = await new.get(key)
    assert info is not None
    assert (info.owner, info.fence) == ("new", current.fence)
    await new.release(current)


async def test_refresh_after_the_local_deadline_raises_and_never_retakes(
    store: Store, key: str
) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    lease = await manager.acquire(key, ttl=0.3, timeout=0)
    await anyio.sleep(0.3)
    faulty.calls.clear()
    with pytest.raises(LeaseLostError) as caught:
        await manager.refresh(lease)
    assert caught.value.reason == "expired"
    assert caught.value.fence == lease.fence
    assert faulty.calls == []
    assert not lease.held


async def test_refresh_of_a_lease_taken_over_says_taken(store: Store, key: str) -> None:
    old = new_manager(store, owner="old", safety_margin=0.01)
    new = new_manager(store, owner="new")
    lease = await old.acquire(key, ttl=1.0, timeout=0)
    taker = await new.acquire(key, ttl=5, timeout=5)  # by the version rule, after 1 s
    assert taker.fence > lease.fence
    # The old holder's local deadline has passed, so it does not even ask.
    with pytest.raises(LeaseLostError) as caught:
        await old.refresh(lease)
    assert caught.value.reason == "expired"
    await new.release(taker)


async def test_break_lease_clears_any_holder_and_keeps_the_fence(store: Store, key: str) -> None:
    holder = new_manager(store, owner="stuck")
    operator = new_manager(store, owner="operator")
    lease = await holder.acquire(key, ttl=10, timeout=0)

    broken = await operator.break_lease(key)
    assert broken is not None
    assert (broken.owner, broken.fence) == ("stuck", lease.fence)
    assert await operator.break_lease(key) is None
    assert await operator.get(key) is None

    with pytest.raises(LeaseLostError) as caught:
        await holder.refresh(lease)
    assert caught.value.reason == "released"
    assert await holder.release(lease) is False

    successor = await operator.acquire(key, timeout=0)
    assert successor.fence > lease.fence
    await operator.release(successor)


async def test_a_missing_table_raises_table_not_found(backend: Backend) -> None:
    manager = new_manager(backend.client, "no-such-table")
    with pytest.raises(TableNotFoundError) as caught:
        await manager.acquire("k", timeout=0)
    assert caught.value.table == "no-such-table"
    assert "create_table()" in str(caught.value)
    assert isinstance(caught.value, LeaseStoreError)


async def test_expires_at_is_milliseconds_not_seconds(store: Store, key: str) -> None:
    manager = new_manager(store)
    before = datetime.now(UTC)
    lease = await manager.acquire(key, ttl=1.25, timeout=0)
    after = datetime.now(UTC)
    assert before + timedelta(seconds=1.25) <= lease.expires_at
    assert lease.expires_at <= after + timedelta(seconds=1.25, milliseconds=2)
    assert lease.expires_at.microsecond % 1000 == 0  # stored in ms
    await manager.release(lease)
