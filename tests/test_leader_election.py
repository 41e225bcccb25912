"""aiolease.patterns.LeaderElection: one leader at a time, failover, hooks and retries."""

from __future__ import annotations

import anyio
import pytest
from support import ATOMIC, FakeClient, eventually, new_manager

from aiolease import Lease, LeaseConfigError, LeaseManager
from aiolease.patterns import LeaderElection
from aiolease.store import Store
from aiolease.testing import FaultyStore, unavailable


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
async def test_leader_election_one_leader_and_failover(store: Store, key: str) -> None:
    log: list[tuple[str, str, object]] = []
    active: set[str] = set()
    names = ["a", "b", "c"]
    recorders = {n: Recorder(n, log, active) for n in names}
    managers = {n: new_manager(store, owner=n) for n in names}
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
        # The first leader's work was cancelled before the second's began. (Its
        # on_stopped_leading runs after the release, as documented, so the next leader
        # may start before it has run; it runs all the same.)
        assert log.index((first, "cancelled", first_fence)) < log.index(
            (second, "started", second_fence)
        )
        await eventually(lambda: (first, "stopped", None) in log)
        assert not any(r.overlaps for r in recorders.values())

        # Failover on loss: break the lease; the leader steps down at its next refresh.
        await managers[first].break_lease(key)
        await eventually(lambda: (second, "cancelled", second_fence) in log)
        await eventually(lambda: len(terms(log)) == 3)
        assert terms(log)[2][1] > second_fence
        await eventually(lambda: (second, "stopped", None) in log)
        tg.cancel_scope.cancel()

    # Each candidate's hooks alternate: started, cancelled, stopped.
    for n in names:
        events = [event for name, event, _ in log if name == n and event != "new_leader"]
        assert events == ["started", "cancelled", "stopped"] * (len(events) // 3)
        assert not elections[n].is_leader
    assert await managers["a"].get(key) is None


async def test_leader_election_hook_error_propagates(store: Store, key: str) -> None:
    manager = new_manager(store)
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


async def test_leader_election_keeps_leading_after_callback_returns(store: Store, key: str) -> None:
    manager = new_manager(store, owner="solo")
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


async def test_leader_election_retries_transient_campaign_failures(store: Store, key: str) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    await manager.get(key)
    faulty.plan("acquire", unavailable(), times=3)
    elected = anyio.Event()

    async def lead(_: Lease) -> None:
        elected.set()

    election = LeaderElection(manager, key, on_started_leading=lead, retry_period=0.05)
    async with anyio.create_task_group() as tg:
        tg.start_soon(election.run)
        with anyio.fail_after(5):
            await elected.wait()
        tg.cancel_scope.cancel()
    assert sum(call.fault is not None for call in faulty.calls) == 3


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
