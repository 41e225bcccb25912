"""The helpers of aiolease.patterns: single-flight, leader election, work claiming, singletons.

Tests of mutual exclusion between concurrent callers run on DynamoDB Local only: moto's
conditional writes are not atomic under concurrency.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import anyio
import pytest
from conftest import Backend
from support import FakeClient, new_manager

from aiolease import Lease, LeaseConfigError, LeaseLostError, LeaseManager
from aiolease.patterns import (
    DONE,
    Busy,
    LeaderElection,
    Regenerated,
    SingleFlight,
    claim_any,
    claim_each,
    is_done,
    single_flight,
    singleton,
)
from aiolease.testing import FaultyClient, throttle

ATOMIC = pytest.mark.backends("ddblocal")


async def eventually(predicate: Callable[[], bool], *, within: float = 5.0) -> None:
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110  (polls state that has no event of its own)
            await anyio.sleep(0.01)


# -- single-flight ------------------------------------------------------------------------


async def test_single_flight_winner_runs_and_returns_fence(backend: Backend, key: str) -> None:
    manager = new_manager(backend.client, backend.table)

    async def regenerate(lease: Lease) -> str:
        lease.ensure_held()
        return f"page@{lease.fence}"

    outcome = await single_flight(manager, key, regenerate, ttl=timedelta(seconds=2))
    assert isinstance(outcome, Regenerated)
    assert outcome.key == key
    assert outcome.value == f"page@{outcome.fence}"
    assert await manager.get(key) is None  # released after the work


async def test_single_flight_loser_learns_holder(backend: Backend, key: str) -> None:
    holder = new_manager(backend.client, backend.table, owner="holder")
    other = new_manager(backend.client, backend.table, owner="other")
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
async def test_single_flight_runs_once_across_managers(backend: Backend, key: str) -> None:
    managers = [new_manager(backend.client, backend.table, owner=f"m{i}") for i in range(2)]
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


async def test_coalescing_shares_one_attempt(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
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

    client.calls.clear()
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(caller)
        await eventually(lambda: key in flight.in_flight)
    assert runs == 1
    assert len(outcomes) == 5
    assert all(o is outcomes[0] for o in outcomes)
    operations = Counter(call.operation for call in client.calls)
    assert operations["update_item"] == 2  # one grant, one release
    assert flight.in_flight == frozenset()


async def test_coalesced_busy_is_one_request(backend: Backend, key: str) -> None:
    holder = new_manager(backend.client, backend.table, owner="holder")
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    await manager.get(key)
    flight = SingleFlight(manager)
    outcomes: list[Regenerated[None] | Busy] = []

    async def regenerate(_: Lease) -> None:
        raise AssertionError("must not run")

    async def caller() -> None:
        outcomes.append(await flight.run(key, regenerate))

    async with holder.lease(key):
        client.calls.clear()
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(caller)
    assert len(outcomes) == 5
    assert all(isinstance(o, Busy) and o.owner == "holder" for o in outcomes)
    assert Counter(call.operation for call in client.calls)["update_item"] == 1


async def test_coalesced_error_reaches_every_caller(backend: Backend, key: str) -> None:
    flight = SingleFlight(new_manager(backend.client, backend.table))
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
    backend: Backend, key: str
) -> None:
    flight = SingleFlight(new_manager(backend.client, backend.table))
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


async def test_single_flight_lease_lost_raises(backend: Backend, key: str) -> None:
    manager = new_manager(backend.client, backend.table)
    breaker = new_manager(backend.client, backend.table)

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


# -- leader election ----------------------------------------------------------------------


class Recorder:
    """Hooks for one candidate that log what happens to a shared list."""

    def __init__(self, name: str, log: list[tuple[str, str, object]], active: set[str]) -> None:
        self.name = name
        self.log = log
        self.active = active
        self.overlaps = 0

    async def started(self, lease: Lease) -> None:
        self.log.append((self.name, "started", lease.fence))
        if self.active:
            self.overlaps += 1
        self.active.add(self.name)
        try:
            await anyio.sleep_forever()
        finally:
            self.active.discard(self.name)
            self.log.append((self.name, "cancelled", lease.fence))

    async def stopped(self) -> None:
        self.log.append((self.name, "stopped", None))

    async def new_leader(self, owner: str) -> None:
        self.log.append((self.name, "new_leader", owner))


def terms(log: list[tuple[str, str, object]]) -> list[tuple[str, int]]:
    return [(name, fence) for name, event, fence in log if event == "started"]  # type: ignore[misc]


@ATOMIC
async def test_leader_election_one_leader_and_failover(backend: Backend, key: str) -> None:
    log: list[tuple[str, str, object]] = []
    active: set[str] = set()
    names = ["a", "b", "c"]
    recorders = {n: Recorder(n, log, active) for n in names}
    managers = {n: new_manager(backend.client, backend.table, owner=n) for n in names}
    elections = {
        n: LeaderElection(
            managers[n],
            key,
            on_started_leading=recorders[n].started,
            on_stopped_leading=recorders[n].stopped,
            on_new_leader=recorders[n].new_leader,
        )
        for n in names
    }
    scopes = {n: anyio.CancelScope() for n in names}

    async def candidate(name: str) -> None:
        with scopes[name]:
            await elections[name].run()

    async with anyio.create_task_group() as tg:
        for n in names:
            tg.start_soon(candidate, n)
        await eventually(lambda: len(terms(log)) == 1)
        first, first_fence = terms(log)[0]
        assert elections[first].is_leader
        await anyio.sleep(1.0)  # across several heartbeats: still one leader
        assert [e.is_leader for e in elections.values()].count(True) == 1
        await eventually(lambda: all(e.leader == first for e in elections.values()))

        # Failover on cancellation: the leader releases, another one takes over.
        scopes[first].cancel()
        await eventually(lambda: len(terms(log)) == 2)
        second, second_fence = terms(log)[1]
        assert second != first
        assert second_fence > first_fence
        assert log.index((first, "stopped", None)) < log.index((second, "started", second_fence))
        assert not any(r.overlaps for r in recorders.values())

        # Failover on loss: break the lease; the leader steps down at its next refresh.
        await managers[first].break_lease(key)
        await eventually(lambda: (second, "cancelled", second_fence) in log)
        await eventually(lambda: len(terms(log)) == 3)
        assert terms(log)[2][1] > second_fence
        assert (second, "stopped", None) in log
        tg.cancel_scope.cancel()

    # Each candidate's hooks alternate: started, cancelled, stopped.
    for n in names:
        events = [event for name, event, _ in log if name == n and event != "new_leader"]
        assert events == ["started", "cancelled", "stopped"] * (len(events) // 3)
        assert not elections[n].is_leader
    assert await managers["a"].get(key) is None


async def test_leader_election_hook_error_propagates(backend: Backend, key: str) -> None:
    manager = new_manager(backend.client, backend.table)
    stopped: list[bool] = []

    async def lead(_: Lease) -> None:
        raise ValueError("leader failed")

    async def on_stopped() -> None:
        stopped.append(True)

    election = LeaderElection(manager, key, on_started_leading=lead, on_stopped_leading=on_stopped)
    with anyio.fail_after(5), pytest.raises(ValueError, match="leader failed"):
        await election.run()
    assert stopped == [True]
    assert await manager.get(key) is None


async def test_leader_election_keeps_leading_after_callback_returns(
    backend: Backend, key: str
) -> None:
    manager = new_manager(backend.client, backend.table, owner="solo")
    leaders: list[str] = []
    fences: list[int] = []

    async def lead(lease: Lease) -> None:
        fences.append(lease.fence)

    async def new_leader(owner: str) -> None:
        leaders.append(owner)

    election = LeaderElection(manager, key, on_started_leading=lead, on_new_leader=new_leader)
    async with anyio.create_task_group() as tg:
        tg.start_soon(election.run)
        await eventually(lambda: bool(fences))
        await anyio.sleep(1.0)  # past the ttl: heartbeats keep it
        info = await manager.get(key)
        assert info is not None
        assert info.owner == "solo"
        assert election.lease is not None
        assert election.lease.fence == fences[0]
        tg.cancel_scope.cancel()
    assert leaders == ["solo"]
    assert fences == fences[:1]
    assert election.lease is None
    assert await manager.get(key) is None


async def test_leader_election_retries_transient_campaign_failures(
    backend: Backend, key: str
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    await manager.get(key)
    client.plan("update_item", throttle(), times=3)
    elected = anyio.Event()

    async def lead(_: Lease) -> None:
        elected.set()

    election = LeaderElection(manager, key, on_started_leading=lead, retry_period=0.05)
    async with anyio.create_task_group() as tg:
        tg.start_soon(election.run)
        with anyio.fail_after(5):
            await elected.wait()
        tg.cancel_scope.cancel()
    assert sum(call.fault is not None for call in client.calls) == 3


def test_leader_election_rejects_bad_arguments() -> None:
    manager = LeaseManager(FakeClient(), "leases")

    async def lead(_: Lease) -> None:
        pass

    with pytest.raises(LeaseConfigError, match="retry_period"):
        LeaderElection(manager, "k", on_started_leading=lead, retry_period=0)
    with pytest.raises(LeaseConfigError, match="on_started_leading"):
        LeaderElection(manager, "k", on_started_leading=None)  # type: ignore[arg-type]
    slow = LeaseManager(FakeClient(), "leases", heartbeat_interval=1)
    with pytest.raises(LeaseConfigError, match="heartbeat_interval"):
        LeaderElection(slow, "k", on_started_leading=lead, ttl=1)


# -- work claiming ------------------------------------------------------------------------


@ATOMIC
async def test_claim_any_spreads_workers_over_keys(backend: Backend, key: str) -> None:
    keys = [f"{key}:{i}" for i in range(5)]
    managers = [new_manager(backend.client, backend.table, owner=f"w{i}") for i in range(5)]
    claimed: dict[str, Lease | None] = {}

    async def worker(manager: LeaseManager) -> None:
        claimed[manager.owner] = await claim_any(manager, keys)

    async with anyio.create_task_group() as tg:
        for manager in managers:
            tg.start_soon(worker, manager)
    leases = [lease for lease in claimed.values() if lease is not None]
    assert sorted(lease.key for lease in leases) == sorted(keys)

    extra = new_manager(backend.client, backend.table)
    assert await claim_any(extra, keys, shuffle=False) is None
    first = leases[0]
    owner = next(m for m in managers if m.owner == first.owner)

    async def release_soon() -> None:
        await anyio.sleep(0.2)
        await owner.release(first)

    async with anyio.create_task_group() as tg:
        tg.start_soon(release_soon)
        late = await claim_any(extra, keys, timeout=3)
    assert late is not None
    assert late.key == first.key
    assert late.fence > first.fence
    for manager, lease in [(extra, late), *((m, claimed[m.owner]) for m in managers[1:])]:
        if lease is not None and lease.held:
            await manager.release(lease)


async def test_claim_any_in_order_and_skip(backend: Backend, key: str) -> None:
    manager = new_manager(backend.client, backend.table)
    keys = [f"{key}:a", f"{key}:b"]
    first = await claim_any(manager, keys, shuffle=False)
    assert first is not None
    assert first.key == keys[0]
    await manager.release(first, data=DONE)
    second = await claim_any(manager, keys, shuffle=False, skip=is_done)
    assert second is not None
    assert second.key == keys[1]
    await manager.release(second)
    assert await manager.get(keys[0]) is None


@ATOMIC
async def test_claim_each_runs_every_key_once(backend: Backend, key: str) -> None:
    keys = [f"{key}:{i}" for i in range(8)]
    managers = [new_manager(backend.client, backend.table, owner=f"w{i}") for i in range(3)]
    runs: Counter[str] = Counter()
    results: dict[str, dict[str, str]] = {}

    async def process(lease: Lease) -> str:
        runs[lease.key] += 1
        await anyio.sleep(0.02)
        return lease.owner

    async def worker(manager: LeaseManager) -> None:
        # Several passes, as a worker would until the batch is done.
        for _ in range(3):
            results.setdefault(manager.owner, {}).update(await claim_each(manager, keys, process))

    async with anyio.create_task_group() as tg:
        for manager in managers:
            tg.start_soon(worker, manager)
    assert sorted(runs) == sorted(keys)
    assert set(runs.values()) == {1}
    merged = {k: v for per_worker in results.values() for k, v in per_worker.items()}
    assert sorted(merged) == sorted(keys)
    assert await claim_each(managers[0], keys, process) == {}


def test_claim_rejects_bad_arguments() -> None:
    manager = LeaseManager(FakeClient(), "leases")
    with anyio.from_thread.start_blocking_portal() as portal:
        with pytest.raises(LeaseConfigError, match="one string"):
            portal.call(lambda: claim_any(manager, "abc"))
        with pytest.raises(LeaseConfigError, match="timeout"):
            portal.call(lambda: claim_any(manager, ["a"], timeout=-1))
        with pytest.raises(LeaseConfigError, match="each key"):
            portal.call(lambda: claim_any(manager, ["a", ""]))


# -- singleton jobs -----------------------------------------------------------------------


async def test_singleton_skips_when_held(
    backend: Backend, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    holder = new_manager(backend.client, backend.table, owner="cron-1")
    manager = new_manager(backend.client, backend.table, owner="cron-2")
    runs: list[int] = []

    @singleton(manager, key)
    async def nightly(n: int) -> int:
        runs.append(n)
        return n * 2

    assert await nightly(1) == 2
    async with holder.lease(key):
        with caplog.at_level(logging.INFO, logger="aiolease.patterns"):
            assert await nightly(2) is None
    assert runs == [1]
    assert "cron-1" in caplog.text
    assert nightly.__name__ == "nightly"


async def test_singleton_waits(backend: Backend, key: str) -> None:
    holder = new_manager(backend.client, backend.table)
    manager = new_manager(backend.client, backend.table)

    @singleton(lambda: manager, key, wait=timedelta(seconds=3))
    async def job() -> str:
        return "ran"

    @singleton(manager, key, wait=0.1)
    async def impatient() -> str:
        return "ran"

    lease = await holder.acquire(key)

    async def release_soon() -> None:
        await anyio.sleep(0.3)
        await holder.release(lease)

    async with anyio.create_task_group() as tg:
        tg.start_soon(release_soon)
        assert await impatient() is None
        assert await job() == "ran"


async def test_singleton_default_key_and_errors(backend: Backend) -> None:
    manager = new_manager(backend.client, backend.table)
    seen: list[str] = []

    @singleton(manager, wait=True)
    async def job() -> None:
        info = await manager.get(f"singleton:{__name__}.{job_name}")
        assert info is not None
        seen.append(info.owner)
        raise KeyError("inside")

    job_name = "test_singleton_default_key_and_errors.<locals>.job"
    with pytest.raises(KeyError, match="inside"):
        await job()
    assert seen == [manager.owner]


def test_singleton_rejects_bad_arguments() -> None:
    manager = LeaseManager(FakeClient(), "leases")
    with pytest.raises(LeaseConfigError, match="wait"):
        singleton(manager, "k", wait="soon")  # type: ignore[arg-type]
    with pytest.raises(LeaseConfigError, match="wait"):
        singleton(manager, "k", wait=-1)
    with pytest.raises(LeaseConfigError, match="ttl"):
        singleton(manager, "k", ttl=float("nan"))
    with pytest.raises(LeaseConfigError, match="manager"):
        singleton(42, "k")  # type: ignore[arg-type]


# -- the examples -------------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


async def test_example_isr_guard(capsys: pytest.CaptureFixture[str]) -> None:
    served: list[str] = await load_example("isr_guard").main()
    assert len(served) == 12
    regenerated = [line for line in served if "regenerated" in line]
    stale = [line for line in served if "served stale" in line]
    assert len(regenerated) == 4  # the winner's server: its four requests shared one run
    assert len({line.split(":")[0] for line in regenerated}) == 1
    assert len(stale) == 8
    assert "cache: Page(html='<new by" in capsys.readouterr().out


async def test_example_leader_election() -> None:
    terms: list[tuple[str, int]] = await load_example("leader_election").main()
    assert len(terms) >= 2
    assert terms[0][0] != terms[1][0]
    assert terms[0][1] < terms[1][1]


async def test_example_competing_consumers() -> None:
    module = load_example("competing_consumers")
    done_by: dict[str, str] = await module.main()
    assert sorted(done_by) == module.JOBS
