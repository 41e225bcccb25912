"""aiolease.patterns single-flight: one caller regenerates, the others learn who does.

Tests of mutual exclusion between concurrent callers run on DynamoDB Local only (`ATOMIC`):
moto's conditional writes are not atomic under concurrency.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import anyio
import pytest
from support import ATOMIC, FakeClient, eventually, new_manager

from aiolease import Lease, LeaseConfigError, LeaseLostError, LeaseManager
from aiolease.patterns import Busy, Regenerated, SingleFlight, single_flight
from aiolease.store import Store
from aiolease.testing import FaultyStore


async def test_single_flight_winner_runs_and_returns_fence(store: Store, key: str) -> None:
    manager = new_manager(store)

    async def regenerate(lease: Lease) -> str:
        lease.ensure_held()
        return f"page@{lease.fence}"

    outcome = await single_flight(manager, key, regenerate, ttl=timedelta(seconds=2))
    assert isinstance(outcome, Regenerated)
    assert outcome.key == key
    assert outcome.value == f"page@{outcome.fence}"
    assert await manager.get(key) is None  # released after the work


async def test_single_flight_loser_learns_holder(store: Store, key: str) -> None:
    holder = new_manager(store, owner="holder")
    other = new_manager(store, owner="other")
    ran: list[int] = []

    async def regenerate(lease: Lease) -> None:
        ran.append(lease.fence)

    async with holder.lease(key) as held:
        outcome = await SingleFlight(other, coalesce=False).run(key, regenerate)
    assert not ran
    assert isinstance(outcome, Busy)
    assert outcome.owner == "holder"
    assert outcome.expires_at == held.expires_at
    assert 0 < outcome.retry_after <= 1.5 + 0.2 + 0.1


@ATOMIC
async def test_single_flight_runs_once_across_managers(store: Store, key: str) -> None:
    managers = [new_manager(store, owner=f"m{i}") for i in range(2)]
    runs: list[str] = []
    outcomes: list[Regenerated[str] | Busy] = []

    async def regenerate(lease: Lease) -> str:
        runs.append(lease.owner)
        await anyio.sleep(0.3)
        return lease.owner

    async def caller(index: int) -> None:
        flight = SingleFlight(managers[index % 2], coalesce=False)
        outcomes.append(await flight.run(key, regenerate))

    async with anyio.create_task_group() as tg:
        for index in range(10):
            tg.start_soon(caller, index)
    assert len(runs) == 1
    won = [o for o in outcomes if isinstance(o, Regenerated)]
    busy = [o for o in outcomes if isinstance(o, Busy)]
    assert len(won) == 1
    assert won[0].value == runs[0]
    assert len(busy) == 9
    assert all(b.owner == runs[0] and b.retry_after > 0 for b in busy)


async def test_coalescing_shares_one_attempt(store: Store, key: str) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    await manager.get(key)  # checks the table once, before counting
    flight = SingleFlight(manager)
    runs = 0
    outcomes: list[Regenerated[int] | Busy] = []

    async def regenerate(lease: Lease) -> int:
        nonlocal runs
        runs += 1
        await anyio.sleep(0.1)
        return lease.fence

    async def caller() -> None:
        outcomes.append(await flight.run(key, regenerate))

    faulty.calls.clear()
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(caller)
        await eventually(lambda: key in flight.in_flight)
    assert runs == 1
    assert len(outcomes) == 5
    assert all(o is outcomes[0] for o in outcomes)
    operations = Counter(call.operation for call in faulty.calls)
    assert operations == {"acquire": 1, "release": 1}  # one grant, one release
    assert flight.in_flight == frozenset()


async def test_coalesced_busy_is_one_request(store: Store, key: str) -> None:
    holder = new_manager(store, owner="holder")
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    await manager.get(key)
    flight = SingleFlight(manager)
    outcomes: list[Regenerated[None] | Busy] = []

    async def regenerate(_: Lease) -> None:
        raise AssertionError("must not run")

    async def caller() -> None:
        outcomes.append(await flight.run(key, regenerate))

    async with holder.lease(key):
        faulty.calls.clear()
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(caller)
    assert len(outcomes) == 5
    assert all(isinstance(o, Busy) and o.owner == "holder" for o in outcomes)
    assert Counter(call.operation for call in faulty.calls)["acquire"] == 1


async def test_coalesced_error_reaches_every_caller(store: Store, key: str) -> None:
    flight = SingleFlight(new_manager(store))
    errors: list[BaseException] = []

    async def regenerate(_: Lease) -> None:
        await anyio.sleep(0.05)
        raise ValueError("boom")

    async def caller() -> None:
        try:
            await flight.run(key, regenerate)
        except ValueError as error:
            errors.append(error)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(caller)
    assert len(errors) == 3
    assert all(str(e) == "boom" for e in errors)


async def test_coalesced_followers_retry_when_first_caller_cancelled(
    store: Store, key: str
) -> None:
    flight = SingleFlight(new_manager(store))
    started = anyio.Event()
    runs = 0

    async def regenerate(_: Lease) -> int:
        nonlocal runs
        runs += 1
        started.set()
        await anyio.sleep(0.2)
        return runs

    outcome: list[Regenerated[int] | Busy] = []

    async def follower() -> None:
        outcome.append(await flight.run(key, regenerate))

    first = anyio.CancelScope()

    async def first_caller() -> None:
        with first:
            await flight.run(key, regenerate)

    async with anyio.create_task_group() as tg:
        tg.start_soon(first_caller)
        await started.wait()
        tg.start_soon(follower)
        tg.start_soon(follower)
        await anyio.sleep(0.05)
        first.cancel()
    assert runs == 2
    assert len(outcome) == 2
    assert all(isinstance(o, Regenerated) and o.value == 2 for o in outcome)


async def test_single_flight_lease_lost_raises(store: Store, key: str) -> None:
    manager = new_manager(store)
    breaker = new_manager(store)

    async def regenerate(lease: Lease) -> None:
        await breaker.break_lease(lease.key)
        await anyio.sleep(5)

    with anyio.fail_after(3), pytest.raises(LeaseLostError) as caught:
        await single_flight(manager, key, regenerate)
    assert caught.value.reason == "released"


def test_single_flight_rejects_bad_arguments() -> None:
    manager = LeaseManager(FakeClient(), "leases")
    with pytest.raises(LeaseConfigError, match="ttl"):
        SingleFlight(manager, ttl=-1)
    with pytest.raises(LeaseConfigError, match="LeaseManager"):
        SingleFlight(object())  # type: ignore[arg-type]
