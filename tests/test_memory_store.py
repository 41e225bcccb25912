"""The store seam: `LeaseManager(store)`, and `MemoryStore` behind it."""

from __future__ import annotations

import random
import types
from datetime import timedelta
from typing import Any

import anyio
import pytest

import aiolease.dynamodb
import aiolease.store
from aiolease import LeaseConfigError, LeaseHeldError, LeaseManager, LeaseStoreError
from aiolease.store import Now, Outcome, Store
from aiolease.testing import MemoryStore, Operation, SkewedClock


class Clock:
    """A wall clock that moves only when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tokens(prefix: str) -> Any:
    counter = iter(range(1_000_000))
    return lambda: f"{prefix}{next(counter)}"


def test_the_stores_implement_the_store_protocol() -> None:
    assert isinstance(MemoryStore(), Store)
    assert isinstance(MemoryStore(semantics="server-clock"), Store)
    assert "Store" in aiolease.store.__all__
    assert "DynamoDBStore" in aiolease.dynamodb.__all__


async def test_a_manager_on_a_memory_store_grants_refuses_and_releases() -> None:
    store = MemoryStore()
    first = LeaseManager(store, owner="first")
    second = LeaseManager(store, owner="second")
    assert first.table == "memory"
    lease = await first.acquire("job", ttl=5)
    with pytest.raises(LeaseHeldError) as held:
        await second.acquire("job", timeout=0)
    assert held.value.owner == "first"
    assert 4.9 < held.value.retry_after <= 5.0  # the version rule: one ttl from now
    info = await second.get("job")
    assert info is not None
    assert info.owner == "first"
    assert [i.key async for i in second.list("jo")] == ["job"]
    assert await first.release(lease, data={"done": True})
    assert await second.get("job") is None
    after = await second.acquire("job", timeout=0)
    assert after.fence == lease.fence + 1
    assert after.data == {"done": True}
    await second.release(after)


@pytest.mark.parametrize(
    "option",
    [
        {"attribute_names": {"key": "id"}},
        {"sort_key": ("sk", "lease")},
        {"ttl_buffer": timedelta(days=2)},
    ],
)
def test_dynamodb_options_given_with_a_store_are_refused(option: dict[str, Any]) -> None:
    (name,) = option
    with pytest.raises(LeaseConfigError, match=f"{name} is an option of the DynamoDB store"):
        LeaseManager(MemoryStore(), **option)


def test_a_manager_needs_a_store_or_a_client_with_a_table() -> None:
    with pytest.raises(LeaseConfigError, match="expected a lease store"):
        LeaseManager(object())  # type: ignore[call-overload]


async def test_an_acquire_whose_answer_was_lost_is_recognised_as_its_own_grant() -> None:
    lost = LeaseStoreError("reset", operation="UpdateItem", transient=True, maybe_applied=True)

    async def lose_the_first_answer(operation: Operation[Any]) -> Any:
        answer = operation.apply()
        if operation.name == "acquire" and store.operations == 1:
            raise lost
        return answer

    store = MemoryStore(intercept=lose_the_first_answer)
    manager = LeaseManager(store, backoff=0.01)
    lease = await manager.acquire("job", timeout=5)
    stored = store.peek("job")
    assert stored is not None
    assert stored.token == lease.token
    assert stored.fence == lease.fence  # granted once: the fence did not skip
    assert [store.operations] == [2]  # the lost write, then the re-send that showed it
    await manager.release(lease)


async def test_a_write_the_sdk_sent_twice_applies_once_and_is_handed_out() -> None:
    async def send_twice(operation: Operation[Any]) -> Any:
        first = operation.apply()
        if operation.name != "acquire":
            return first
        second = operation.apply()  # the re-send after an answer lost on the way
        assert isinstance(second, Outcome)
        assert not second.applied
        return Outcome(applied=second.applied, record=second.record, resent=True)

    store = MemoryStore(intercept=send_twice)
    manager = LeaseManager(store)
    lease = await manager.acquire("job", timeout=0)
    stored = store.peek("job")
    assert stored is not None
    assert (stored.token, stored.fence, stored.sequence) == (lease.token, lease.fence, 1)
    assert await manager.release(lease)


async def test_a_held_request_is_applied_when_the_interceptor_lets_it_go() -> None:
    arrived, go = anyio.Event(), anyio.Event()

    async def hold_releases(operation: Operation[Any]) -> Any:
        if operation.name == "release":
            arrived.set()
            await go.wait()
        return operation.apply()

    store = MemoryStore(intercept=hold_releases)
    holder, waiter = LeaseManager(store, owner="holder"), LeaseManager(store, owner="waiter")
    lease = await holder.acquire("job", ttl=30)
    async with anyio.create_task_group() as tg:
        tg.start_soon(holder.release, lease)
        await arrived.wait()
        assert not lease.held  # from the moment the release starts
        with pytest.raises(LeaseHeldError):
            await waiter.acquire("job", timeout=0)  # the write has not landed yet
        go.set()
    taken = await waiter.acquire("job", timeout=0)
    assert taken.fence == lease.fence + 1
    await waiter.release(taken)


async def test_dynamodb_semantics_judge_expiry_by_the_contenders_wall_clock() -> None:
    store = MemoryStore()
    holder = LeaseManager(store, owner="holder")
    ahead = LeaseManager(store, owner="ahead", wall_clock=SkewedClock(3600))
    lease = await holder.acquire("job", ttl=30)
    taken = await ahead.acquire("job", timeout=0)  # skew beyond the bound: early takeover
    assert taken.fence > lease.fence
    await ahead.release(taken)


async def test_server_clock_semantics_judge_expiry_by_the_store_clock() -> None:
    clock = Clock()
    store = MemoryStore(semantics="server-clock", clock=clock)
    holder = LeaseManager(store, owner="holder", wall_clock=SkewedClock(-3600))
    ahead = LeaseManager(store, owner="ahead", wall_clock=SkewedClock(3600))
    lease = await holder.acquire("job", ttl=30)
    with pytest.raises(LeaseHeldError) as held:
        await ahead.acquire("job", timeout=0)  # the hosts' clocks do not matter
    assert 29.9 < held.value.retry_after <= 30.001
    clock.now += 30.001
    taken = await ahead.acquire("job", timeout=0)
    assert taken.fence > lease.fence
    await ahead.release(taken)


async def test_server_clock_fences_come_from_a_sequence_that_never_goes_back() -> None:
    store = MemoryStore(semantics="server-clock")
    manager = LeaseManager(store)
    fences = []
    for _ in range(3):
        lease = await manager.acquire("job", timeout=0)
        fences.append(lease.fence)
        await manager.release(lease)
        assert store.delete("job")  # even the item's deletion does not reset the fence
    assert fences == sorted(set(fences))


async def test_listing_pages_through_every_held_key_with_the_prefix() -> None:
    store = MemoryStore()
    manager = LeaseManager(store)
    leases = [await manager.acquire(f"job:{i:03}", timeout=0) for i in range(250)]
    other = await manager.acquire("other", timeout=0)
    await manager.release(leases[7])
    listed = [info.key async for info in manager.list("job:")]
    assert listed == sorted(f"job:{i:03}" for i in range(250) if i != 7)
    for lease in [*leases, other]:
        await manager.release(lease)


async def test_every_operation_reaches_the_interceptor_with_the_managers_clock() -> None:
    seen: list[tuple[str, Now]] = []

    async def record(operation: Operation[Any]) -> Any:
        seen.append((operation.name, operation.now))
        return operation.apply()

    store = MemoryStore(intercept=record)
    clock = Clock()
    manager = LeaseManager(store, wall_clock=clock, max_clock_skew=0.5)
    lease = await manager.acquire("job", timeout=0)
    await manager.refresh(lease)
    await manager.get("job")
    await manager.break_lease("job")
    assert [name for name, _ in seen] == ["acquire", "refresh", "get", "get", "break_lease"]
    assert {now for _, now in seen} == {Now(clock.now, 0.5)}
    assert not await manager.release(lease)  # broken: no longer ours


async def test_jitter_is_drawn_from_the_managers_own_random_source() -> None:
    rng = random.Random(7)  # noqa: S311 (jitter, not secrets)
    untouched = random.Random(7).getstate()  # noqa: S311
    store = MemoryStore()
    holder = LeaseManager(store)
    waiter = LeaseManager(store, poll_interval=0.01, rng=rng, token_factory=tokens("w"))
    lease = await holder.acquire("job", ttl=30)
    with pytest.raises(LeaseHeldError):
        await waiter.acquire("job", timeout=0.05)
    assert rng.getstate() != untouched  # each poll's jitter came from rng
    await holder.release(lease)


def test_bad_memory_store_options_are_refused() -> None:
    with pytest.raises(LeaseConfigError, match="semantics"):
        MemoryStore(semantics="sql")  # type: ignore[arg-type]
    with pytest.raises(LeaseConfigError, match="clock"):
        MemoryStore(clock=3)  # type: ignore[arg-type]
    with pytest.raises(LeaseConfigError, match="rng"):
        LeaseManager(MemoryStore(), rng=3)  # type: ignore[call-overload]


async def test_a_stopped_manager_keeps_none_of_the_leases_it_released() -> None:
    manager = LeaseManager(MemoryStore())
    async with manager:
        await manager.acquire("left-held")  # released by the manager's exit
        released = await manager.acquire("released")
        await manager.release(released)
    assert not manager._heartbeats._tracked  # nothing held on to after the exit


def test_a_store_short_of_a_part_is_told_what_it_lacks() -> None:
    inner = MemoryStore()
    parts = ["table", "capabilities", "check_options", "check_table", "create_table"]
    parts += ["acquire", "refresh", "release", "break_lease", "revoke", "get", "list_page"]
    # A store written before Store.location existed: everything else is there.
    incomplete = types.SimpleNamespace(**{name: getattr(inner, name) for name in parts})
    with pytest.raises(LeaseConfigError, match="is not a complete lease store: it lacks location"):
        LeaseManager(incomplete)
