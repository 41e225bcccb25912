"""`async with manager.lease(...)`: heartbeats, the local deadline, and cancellation on loss."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import anyio
import pytest
from support import SKEW, Backend, eventually, new_manager

from aiolease import LeaseLostError, LeaseManager, LeaseStoreError
from aiolease.store import Store
from aiolease.testing import (
    Fault,
    FaultContext,
    FaultyClient,
    FaultyStore,
    Perform,
    hang,
    server_error,
    throttle,
    unavailable,
)


async def test_the_heartbeat_keeps_a_lease_alive_well_past_its_ttl(store: Store, key: str) -> None:
    manager = new_manager(store)
    contender = new_manager(store)
    ttl = 1.0  # each refresh has ttl - interval - margin = 0.47 s to land: room on a loaded host
    async with manager.lease(key, ttl=ttl) as lease:
        first_fence = lease.fence
        await anyio.sleep(ttl * 3)
        lease.ensure_held()
        assert lease.remaining > 0
        assert lease.fence == first_fence  # a refresh is not a new grant
        info = await contender.get(key)
        assert info is not None
        assert info.fence == first_fence
    assert not lease.held
    assert await contender.get(key) is None


async def test_loss_cancels_the_body_and_raises_a_plain_lease_lost_error(
    store: Store, key: str
) -> None:
    manager = new_manager(store)
    operator = new_manager(store)
    reached_the_end = False
    ttl = 0.9
    started = anyio.current_time()
    with pytest.raises(LeaseLostError) as caught:
        async with manager.lease(key, ttl=ttl) as lease:
            await operator.break_lease(key)
            await anyio.sleep(10 * ttl)
            reached_the_end = True
    assert type(caught.value) is LeaseLostError  # not an ExceptionGroup
    assert caught.value.reason == "released"
    assert caught.value.key == key
    assert caught.value.fence == lease.fence
    assert not reached_the_end
    # Found out at the next heartbeat (ttl/3), well before the ttl.
    assert anyio.current_time() - started < ttl
    assert not lease.held


async def test_loss_to_another_holder_says_taken(store: Store, key: str) -> None:
    manager = new_manager(store)
    # A rival whose clock runs far beyond the skew bound sees the lease as expired at once.
    rival = new_manager(store, owner="rival", wall_clock=lambda: time.time() + 3600)
    ttl = 1.2
    with pytest.raises(LeaseLostError) as caught:
        async with manager.lease(key, ttl=ttl):
            taken = await rival.acquire(key, ttl=60, timeout=0)
            await anyio.sleep(10 * ttl)
    assert caught.value.reason == "taken"
    assert "rival" in str(caught.value)
    info = await rival.get(key)
    assert info is not None
    assert info.owner == "rival"  # the loser's exit did not touch the new holder's lease
    await rival.release(taken)


async def test_the_body_is_cancelled_by_the_local_deadline_when_the_store_is_unreachable(
    store: Store, key: str
) -> None:
    faulty = FaultyStore(store)
    ttl, margin = 1.2, 0.3
    manager = new_manager(faulty, safety_margin=margin)
    with pytest.raises(LeaseLostError) as caught:
        async with manager.lease(key, ttl=ttl) as lease:
            acquired_at = anyio.current_time()
            for operation in ("refresh", "release"):  # every write
                faulty.plan(operation, hang(), probability=1.0)
            try:
                await anyio.sleep(10 * ttl)
            finally:
                stopped_at = anyio.current_time()
    exited_at = anyio.current_time()
    assert caught.value.reason == "expired"
    # The body stopped by ttl - safety_margin after the acquire was sent (plus scheduling),
    assert stopped_at - acquired_at <= ttl - margin + 0.25
    # and the caller heard of it promptly: the release attempt after the deadline is short.
    assert exited_at - stopped_at <= 1.0 + 0.25
    assert not lease.held
    faulty.clear()


@pytest.mark.parametrize(
    ("fault", "cause"),
    [(unavailable(), "the store is unavailable"), (hang(), "a refresh got no answer before")],
    ids=["failing", "silent"],
)
async def test_a_lease_lost_to_its_deadline_names_the_store_failure_as_its_cause(
    store: Store, key: str, fault: Fault, cause: str
) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty, backoff=0.05)
    with pytest.raises(LeaseLostError) as caught:
        async with manager.lease(key, ttl=0.9):
            faulty.plan("refresh", fault, probability=1.0)
            await anyio.sleep(10)
    faulty.clear()
    assert caught.value.reason == "expired"
    assert "its local deadline passed" in str(caught.value)
    assert "; the store failed: " in str(caught.value)
    assert cause in str(caught.value)
    assert isinstance(caught.value.__cause__, LeaseStoreError)


@pytest.mark.parametrize(
    "fault",
    [throttle(), throttle("ThrottlingException"), server_error(500), server_error(503)],
    ids=["provisioned-throughput", "throttling", "500", "503"],
)
async def test_the_heartbeat_retries_transient_errors_until_the_deadline(
    backend: Backend, key: str, fault: Fault
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table, backoff=0.05)
    async with manager.lease(key, ttl=1.5) as lease:
        client.plan("update_item", fault, times=3)
        await anyio.sleep(1.5 * 2)
        lease.ensure_held()
    refreshes = [c for c in client.calls if c.operation == "update_item"]
    assert len([c for c in refreshes if c.fault is not None]) == 3
    assert any(c.outcome == "ok" for c in refreshes)


class SlowForOneKey(Fault):
    """Delays every operation on one key by `delay`; others pass straight."""

    name = "slow_for_one_key"

    def __init__(self, slow_key: str) -> None:
        self.slow_key = slow_key
        self.delay = 0.0

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        if ctx.call.params.get("key") == self.slow_key:
            await anyio.sleep(self.delay)
        return await perform()


async def test_one_slow_lease_does_not_delay_the_heartbeats_of_the_others(
    store: Store, key: str
) -> None:
    ttl = 1.2
    slow_key = f"{key}:slow"
    slow = SlowForOneKey(slow_key)
    faulty = FaultyStore(store)
    faulty.plan("*", slow, times=None)
    manager = new_manager(faulty)
    outcomes: dict[str, str] = {}

    async def hold(name: str, stop: anyio.Event) -> None:
        try:
            async with manager.lease(f"{key}:{name}", ttl=ttl) as lease:
                await stop.wait()
                lease.ensure_held()
        except LeaseLostError as lost:
            outcomes[name] = lost.reason
        else:
            outcomes[name] = "held"

    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        for name in ("slow", "a", "b", "c"):
            tg.start_soon(hold, name, stop)
        await anyio.sleep(0.1)
        slow.delay = 10 * ttl  # every refresh of the slow key now outlasts its lease
        await anyio.sleep(ttl * 3)
        stop.set()
    assert outcomes == {"slow": "expired", "a": "held", "b": "held", "c": "held"}


async def test_a_running_manager_heartbeats_acquired_leases_without_a_task_each(
    store: Store, key: str
) -> None:
    ttl = 3.0
    manager = new_manager(store)
    contender = new_manager(store)
    async with manager:
        idle_tasks = len(asyncio.all_tasks())
        leases = [await manager.acquire(f"{key}:{i}", ttl=ttl) for i in range(10)]
        granted = [lease.expires_at for lease in leases]
        # No first heartbeat is due yet (3/4 of the interval after a grant at the earliest):
        # the held leases wait as heap entries, not as tasks.
        assert len(asyncio.all_tasks()) == idle_tasks
        await anyio.sleep(ttl)  # three heartbeat intervals
        for lease, first_expiry in zip(leases, granted, strict=True):
            lease.ensure_held()
            assert lease.expires_at > first_expiry  # refreshed
            info = await contender.get(lease.key)
            assert info is not None
            assert info.fence == lease.fence
        assert all([await manager.release(lease) for lease in leases])


async def test_a_lease_block_in_a_running_manager_is_heartbeated_without_a_task_of_its_own(
    store: Store, key: str
) -> None:
    ttl = 0.6
    manager = new_manager(store)
    async with manager:
        idle_tasks = len(asyncio.all_tasks())
        async with manager.lease(key, ttl=ttl) as lease:
            assert len(asyncio.all_tasks()) == idle_tasks
            await anyio.sleep(ttl * 4)
            lease.ensure_held()
        assert not lease.held
    assert await manager.get(key) is None


async def test_a_lease_block_still_running_when_its_manager_stops_is_stopped_and_released(
    store: Store, key: str
) -> None:
    ttl = 3.0
    manager = new_manager(store)
    entered = anyio.Event()
    caught: list[LeaseLostError] = []

    async def hold() -> None:
        try:
            async with manager.lease(key, ttl=ttl):
                entered.set()
                await anyio.sleep(10 * ttl)
        except LeaseLostError as lost:
            caught.append(lost)

    async with anyio.create_task_group() as tg:
        async with manager:
            tg.start_soon(hold)
            await entered.wait()
        stopped = anyio.current_time()
    assert anyio.current_time() - stopped < ttl / 3
    assert [lost.reason for lost in caught] == ["expired"]
    assert "manager stopped" in str(caught[0])
    assert await manager.get(key) is None


async def test_leases_granted_together_spread_their_first_heartbeats(
    store: Store, key: str
) -> None:
    ttl = 1.5
    interval = ttl / 3
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    async with manager:
        keys = [f"{key}:{i}" for i in range(20)]
        leases = [await manager.acquire(k, ttl=ttl) for k in keys]
        # Each first heartbeat is planned between 3/4 of the interval and the interval
        # after its grant was sent, so that leases granted in a burst do not refresh in a
        # burst for as long as they are held.
        planned = {lease.key: due - sent for due, _, lease, sent in manager._heartbeats._due}
        assert sorted(planned) == sorted(keys)
        assert all(0.75 * interval <= offset <= interval for offset in planned.values())
        assert max(planned.values()) - min(planned.values()) > 0.25 * 0.25 * interval

        def sends(k: str) -> list[float]:
            calls = faulty.calls_of("acquire") + faulty.calls_of("refresh")
            calls.sort(key=lambda c: c.started)
            return [c.started for c in calls if c.params["key"] == k]

        # And each is sent as planned: never earlier (allowing for the grant's own send),
        # and within a ttl.
        await eventually(lambda: all(len(sends(k)) >= 2 for k in keys), within=ttl)
        assert all(sends(k)[1] - sends(k)[0] >= 0.7 * interval for k in keys)
        for lease in leases:
            await manager.release(lease)


async def test_a_slow_refresh_does_not_delay_the_other_heartbeats_of_a_running_manager(
    store: Store, key: str
) -> None:
    ttl = 1.2
    slow_key = f"{key}:slow"
    slowness = SlowForOneKey(slow_key)
    faulty = FaultyStore(store)
    faulty.plan("*", slowness, times=None)
    manager = new_manager(faulty)
    async with manager:
        slow = await manager.acquire(slow_key, ttl=ttl)
        others = [await manager.acquire(f"{key}:{name}", ttl=ttl) for name in "abc"]
        slowness.delay = 10 * ttl  # every refresh of the slow key now outlasts its lease
        await anyio.sleep(ttl * 3)
        assert slow.lost is not None
        assert slow.lost.reason == "expired"
        for lease in others:
            lease.ensure_held()


async def test_a_released_or_lost_lease_gets_no_more_heartbeats(store: Store, key: str) -> None:
    ttl = 0.6
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    operator = new_manager(store)
    async with manager:
        released = await manager.acquire(f"{key}:released", ttl=ttl)
        lost = await manager.acquire(f"{key}:lost", ttl=ttl)
        await manager.release(released)
        await operator.break_lease(lost.key)
        with anyio.fail_after(ttl):
            await lost.wait_lost()
        sent = len(faulty.calls)
        await anyio.sleep(ttl * 2)
        assert len(faulty.calls) == sent


async def test_a_direct_refresh_postpones_the_next_heartbeat(store: Store, key: str) -> None:
    ttl = 1.2
    faulty = FaultyStore(store)
    manager = new_manager(faulty)
    interval = ttl / 3
    async with manager:
        lease = await manager.acquire(key, ttl=ttl)
        await anyio.sleep(interval * 0.5)  # the first heartbeat is planned 3/4 to 1 interval in
        await manager.refresh(lease)
        direct = faulty.calls_of("refresh")[-1]
        await anyio.sleep(interval * 2)
        beats = [c for c in faulty.calls_of("refresh") if c.started > direct.started]
        assert beats  # heartbeats go on after it...
        # ...but the next comes one interval after the direct refresh, not as first planned
        # (judged from the refresh's own send, so a loaded machine cannot fake it).
        assert beats[0].started - direct.started >= interval - 0.02
        lease.ensure_held()
        await manager.release(lease)


async def test_the_body_exception_propagates_unchanged_and_the_lease_is_released(
    store: Store, key: str
) -> None:
    manager = new_manager(store)
    with pytest.raises(KeyError, match="boom"):
        async with manager.lease(key):
            raise KeyError("boom")
    assert await manager.get(key) is None


async def test_cancelling_the_body_from_outside_still_releases_the_lease(
    store: Store, key: str
) -> None:
    manager = new_manager(store)
    inside = anyio.Event()

    async def worker() -> None:
        async with manager.lease(key, ttl=10):
            inside.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        await inside.wait()
        tg.cancel_scope.cancel()
    assert await manager.get(key) is None


async def test_release_is_shielded_from_a_cancelled_caller(store: Store, key: str) -> None:
    manager = new_manager(store)
    lease = await manager.acquire(key, ttl=10)
    with anyio.CancelScope() as scope:
        scope.cancel()
        released = await manager.release(lease)
    assert released is True
    assert await manager.get(key) is None


async def test_release_is_bounded_in_time_when_the_store_hangs(store: Store, key: str) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty, release_timeout=0.5)
    started = anyio.current_time()
    async with manager.lease(key, ttl=10):
        faulty.plan("release", hang(), probability=1.0)
    assert anyio.current_time() - started < 0.5 + 1.0
    faulty.clear()
    await new_manager(store).break_lease(key)


async def test_ensure_held_and_remaining_follow_the_local_deadline(store: Store, key: str) -> None:
    manager = new_manager(store, safety_margin=0.2)
    lease = await manager.acquire(key, ttl=0.6, timeout=0)  # not heartbeated
    assert 0.2 < lease.remaining <= 0.4
    lease.ensure_held()
    await anyio.sleep(lease.remaining + 0.01)
    assert lease.remaining == 0
    with pytest.raises(LeaseLostError) as caught:
        lease.ensure_held()
    assert caught.value.reason == "expired"


async def test_acquire_leases_are_heartbeated_while_the_manager_runs(
    store: Store, key: str
) -> None:
    async with new_manager(store) as manager:
        lease = await manager.acquire(key, ttl=0.6)
        await anyio.sleep(0.6 * 3)
        lease.ensure_held()
    # Leaving the manager released it.
    assert not lease.held
    assert await new_manager(store).get(key) is None


async def test_wait_lost_returns_the_loss(store: Store, key: str) -> None:
    operator = new_manager(store)
    async with new_manager(store) as manager:
        lease = await manager.acquire(key, ttl=0.9)
        await operator.break_lease(key)
        with anyio.fail_after(0.9 * 2):
            lost = await lease.wait_lost()
    assert isinstance(lost, LeaseLostError)
    assert lost.reason == "released"


async def test_wait_lost_returns_at_the_local_deadline_without_a_heartbeat(
    store: Store, key: str
) -> None:
    manager = new_manager(store)
    lease = await manager.acquire(key, ttl=0.5)
    with anyio.fail_after(0.5 + 1):
        lost = await lease.wait_lost()
    assert lost.reason == "expired"


async def test_a_running_manager_refuses_to_start_twice(store: Store) -> None:
    manager = new_manager(store)
    async with manager:
        with pytest.raises(Exception, match="already running"):
            async with manager:
                pass


async def test_leaving_a_running_manager_with_an_error_does_not_wrap_it(
    store: Store, key: str
) -> None:
    manager = new_manager(store)
    with pytest.raises(RuntimeError, match="oops"):
        async with manager:
            await manager.acquire(key)
            raise RuntimeError("oops")
    assert await manager.get(key) is None


def test_manager_is_constructible_outside_an_event_loop(backend: Backend) -> None:
    assert isinstance(LeaseManager(backend.client, backend.table), LeaseManager)


async def test_takeover_waits_at_least_the_skew_bound_after_expiry(store: Store, key: str) -> None:
    holder = new_manager(store)
    contender = new_manager(store, max_clock_skew=SKEW)
    lease = await holder.acquire(key, ttl=0.5, timeout=0)
    taken = await contender.acquire(key, ttl=5, timeout=5)
    assert taken.fence > lease.fence
    await contender.release(taken)


async def test_a_token_overwritten_by_another_writer_is_loss(backend: Backend, key: str) -> None:
    manager = new_manager(backend.client, backend.table)
    with pytest.raises(LeaseLostError) as caught:
        async with manager.lease(key, ttl=0.9) as lease:
            await backend.client.update_item(
                TableName=backend.table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET #tok = :other, #own = :who",
                ExpressionAttributeNames={"#tok": "token", "#own": "owner"},
                ExpressionAttributeValues={":other": {"S": "intruder"}, ":who": {"S": "x"}},
            )
            await anyio.sleep(5)
    assert caught.value.reason == "taken"
    assert caught.value.fence == lease.fence
    item = await backend.client.get_item(TableName=backend.table, Key={"pk": {"S": key}})
    assert item["Item"]["token"]["S"] == "intruder"  # the loser's exit left it alone


async def test_a_heartbeat_that_finds_the_table_gone_stops_the_holder_at_once(
    backend: Backend,
) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    manager = new_manager(backend.client, name)
    await manager.create_table()
    ttl = 3.0
    started = anyio.current_time()
    with pytest.raises(LeaseLostError) as caught:
        async with manager.lease("k", ttl=ttl):
            await backend.client.delete_table(TableName=name)
            await anyio.sleep(10 * ttl)
    assert caught.value.reason == "deleted"
    # At the first heartbeat (ttl/3), not at the deadline.
    assert anyio.current_time() - started < ttl - manager._timing(ttl).safety_margin
