"""Races found by an adversarial review, each replayed as one deterministic schedule.

Every test here holds requests "in the network" on events, loses answers after the write
applied, or lets the SDK re-send a request, so that the interleaving that broke a rule
happens every time, not by luck of the clock. Each names the rule it pins down.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from support import Backend, new_manager

from aiolease import Lease, LeaseHeldError, LeaseLostError, LeaseStoreError
from aiolease.store import Store
from aiolease.testing import (
    Fault,
    FaultContext,
    FaultyClient,
    Perform,
    drop_response,
    latency,
    server_error,
)

# Only the version rule may free a key in these schedules: the wall-clock rule would need
# the stored expiry plus this much to pass, far beyond the length of any test here.
NO_WALL_CLOCK_RULE = 60.0


class _Step(Fault):
    """One step of a schedule, written inline by the test."""

    def __init__(self, function: Callable[[Perform, FaultContext], Awaitable[Any]]) -> None:
        self._function = function

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        return await self._function(perform, ctx)


def lost_answer(after: anyio.Event | None = None) -> Fault:
    """Apply the write, set `after`, and lose the answer."""

    async def step(perform: Perform, ctx: FaultContext) -> Any:
        await perform()
        if after is not None:
            after.set()
        raise ReadTimeoutError(endpoint_url=ctx.endpoint_url)

    return _Step(step)


def held_until(event: anyio.Event, *, then: anyio.Event | None = None) -> Fault:
    """Keep the request in the network until `event`, send it, then set `then`."""

    async def step(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
        await event.wait()
        try:
            return await perform()
        finally:
            if then is not None:
                then.set()

    return _Step(step)


def passed_through() -> Fault:
    """Send the request untouched (a placeholder that lets a later rule hit a later call)."""

    async def step(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
        return await perform()

    return _Step(step)


@pytest.mark.backends("ddblocal")
async def test_a_refused_attempt_makes_the_next_grant_write_a_fresh_record_version(
    backend: Backend, key: str
) -> None:
    """A record version is written by at most one grant.

    W1's first attempt applies version Va and its answer is lost; its second attempt is
    held in the network. X and Y are refused and start timing Va. X takes the key by the
    version rule (legitimately: W1 never held it), refusing W1's held attempt, and
    releases. W1's next attempt is granted. Y, which has timed Va all along, then tries
    with Va: it must not be granted while W1 holds.
    """
    ttl = 1.0
    w1_client, y_client = FaultyClient(backend.client), FaultyClient(backend.client)
    options: dict[str, Any] = {"max_clock_skew": NO_WALL_CLOCK_RULE, "safety_margin": 0.2}
    w1 = new_manager(w1_client, backend.table, owner="W1", **options)
    x = new_manager(backend.client, backend.table, owner="X", poll_interval=10, **options)
    y = new_manager(y_client, backend.table, owner="Y", poll_interval=10, **options)
    for manager in (w1, x, y):
        await manager.get(key)  # the table check is done before the schedule starts
    first_applied, x_holds, w1_refused, w1_granted = (anyio.Event() for _ in range(4))
    w1_client.plan("update_item", lost_answer(after=first_applied))
    w1_client.plan("update_item", held_until(x_holds, then=w1_refused))
    y_client.plan("update_item", passed_through())  # refused: Y starts timing Va
    y_client.plan("update_item", held_until(w1_granted))  # sent with seen_version = Va
    w1_lease: list[Lease] = []
    overlaps: list[str] = []

    async def run_w1() -> None:
        w1_lease.append(await w1.acquire(key, ttl=ttl, timeout=5 * ttl))
        w1_granted.set()

    async def run_x() -> None:
        await first_applied.wait()
        lease = await x.acquire(key, ttl=ttl, timeout=5 * ttl)
        x_holds.set()
        await w1_refused.wait()
        assert await x.release(lease)

    async def run_y() -> None:
        await first_applied.wait()
        lease = await y.acquire(key, ttl=ttl, timeout=10 * ttl)
        if w1_lease[0].held:
            overlaps.append(f"Y granted fence {lease.fence} while W1 holds {w1_lease[0]!r}")
        await y.release(lease)

    with anyio.fail_after(20 * ttl):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_w1)
            tg.start_soon(run_x)
            tg.start_soon(run_y)
    assert overlaps == []
    await w1.release(w1_lease[0])


@pytest.mark.backends("ddblocal")
async def test_a_release_retry_refused_after_the_deadline_is_not_taken_as_applied(
    backend: Backend, key: str
) -> None:
    """A refusal is judged by when it came back, not by when its request was sent.

    The first release attempt fails with a 5xx (it may have applied; here it did not).
    The retry is sent before the holder's deadline but held in the network until a
    contender has legitimately taken the key over; it is refused. The release did not
    apply, so `release()` must say False and leave `lease.data` alone.
    """
    ttl = 1.0
    client = FaultyClient(backend.client)
    holder = new_manager(client, backend.table, owner="H", safety_margin=0.2, release_timeout=10)
    contender = new_manager(backend.client, backend.table, owner="C")
    lease = await holder.acquire(key, ttl=ttl, timeout=0, data={"by": "H"})
    contender_holds = anyio.Event()
    client.plan("update_item", server_error(500))
    client.plan("update_item", held_until(contender_holds))
    taken: list[Lease] = []

    async def take_over() -> None:
        taken.append(await contender.acquire(key, ttl=30, timeout=5 * ttl))
        assert not lease.held  # legitimately: the holder's deadline has passed
        contender_holds.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(take_over)
        released = await holder.release(lease, data={"by": "H, released"})

    assert released is False
    assert lease.data == {"by": "H"}
    info = await contender.get(key)
    assert info is not None
    assert (info.owner, info.fence, info.data) == ("C", taken[0].fence, {"by": "H"})
    await contender.release(taken[0])


async def test_a_break_re_sent_by_the_sdk_does_not_break_the_next_holder(
    backend: Backend, key: str
) -> None:
    """A re-sent break is a no-op: it breaks the holder it meant to break, no other.

    The operator's break applies and its answer is lost; the next holder takes the key;
    then the SDK re-sends the same request, as botocore does after a lost answer.
    """
    breaker = FaultyClient(backend.client)
    operator = new_manager(breaker, backend.table, owner="operator")
    first = new_manager(backend.client, backend.table, owner="first")
    second = new_manager(backend.client, backend.table, owner="second")
    broken = await first.acquire(key, ttl=30, timeout=0)
    successor: list[Lease] = []

    async def applied_then_re_sent_after_the_next_grant(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
        with contextlib.suppress(ClientError):
            await perform()  # whatever the first answer was, it is lost
        successor.append(await second.acquire(key, ttl=30, timeout=0))
        return await perform()  # botocore's retry of the same request

    breaker.plan("update_item", _Step(applied_then_re_sent_after_the_next_grant))
    info = await operator.break_lease(key)

    assert info is not None
    assert (info.owner, info.fence) == ("first", broken.fence)
    holder = await second.get(key)
    assert holder is not None
    assert (holder.owner, holder.fence) == ("second", successor[0].fence)
    await second.refresh(successor[0])  # still ours
    assert await second.release(successor[0]) is True


class Network:
    """Requests whose sender gave up on them, still on their way until `deliver()`."""

    def __init__(self, carrier: anyio.abc.TaskGroup) -> None:
        self._carrier = carrier
        self._go = anyio.Event()
        #: What each delivered request got: the response, or the refusal.
        self.answers: list[object] = []

    def carry(self, perform: Perform) -> None:
        """Take the request: it reaches the store only when delivered."""

        async def arrive() -> None:
            await self._go.wait()
            try:
                self.answers.append(await perform())
            except ClientError as refused:
                self.answers.append(refused)

        self._carrier.start_soon(arrive)

    def deliver(self) -> None:
        self._go.set()

    def stuck(self) -> Fault:
        """The request stays in the network; the caller never hears back."""

        async def step(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
            self.carry(perform)
            await anyio.sleep_forever()

        return _Step(step)

    def timed_out_then_re_sent(self) -> Fault:
        """The first send stays in the network; the SDK re-sends, and this copy is answered."""

        async def step(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
            self.carry(perform)
            try:
                return _resent(await perform())
            except ClientError as refused:
                _resent(refused.response)
                raise

        return _Step(step)


def _resent(answer: Any) -> Any:
    """Mark `answer` the way botocore marks an answer to a re-sent request."""
    answer.setdefault("ResponseMetadata", {})["RetryAttempts"] = 1
    return answer


@pytest.mark.parametrize(
    "acquires",
    # Three undos take the revoked list's conditioned path; dynalite proves it without
    # whole-list comparison.
    [1, pytest.param(3, marks=pytest.mark.backends("dynalite", "ddblocal"))],
)
async def test_an_acquire_still_in_the_network_cannot_land_after_its_undo(
    backend: Backend, key: str, acquires: int
) -> None:
    """An undo leaves a mark that a late write of the same acquire cannot pass.

    Each acquire's request is held in the network; the caller gives up (cancelled), and
    the undo runs and finds nothing of ours. Then the requests arrive. With several such
    acquires, each undo adds its token to those already revoked.
    """
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    await manager.get(key)

    async with anyio.create_task_group() as carrier:
        network = Network(carrier)
        for _ in range(acquires):
            client.plan("update_item", network.stuck())
            with anyio.move_on_after(0.3) as waiting:
                await manager.acquire(key, ttl=30, data={"from": "an acquire that gave up"})
            assert waiting.cancelled_caught
        network.deliver()

    assert len(network.answers) == acquires
    assert all(isinstance(answer, ClientError) for answer in network.answers)  # all refused
    assert await manager.get(key) is None
    other = new_manager(backend.client, backend.table, owner="other")
    lease = await other.acquire(key, timeout=0)
    assert lease.data != {"from": "an acquire that gave up"}
    await other.release(lease)


async def test_an_acquire_refused_after_an_sdk_re_send_undoes_the_first_send(
    backend: Backend, key: str
) -> None:
    """A refusal the SDK got for a re-send says nothing of the first send, still in the
    network: an acquire that gives up after it revokes its token, so the first send
    cannot land once the key is free."""
    holder = new_manager(backend.client, backend.table, owner="holder")
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    held = await holder.acquire(key, ttl=30, timeout=0)
    await manager.get(key)

    async with anyio.create_task_group() as carrier:
        network = Network(carrier)
        client.plan("update_item", network.timed_out_then_re_sent())
        with pytest.raises(LeaseHeldError):
            await manager.acquire(key, ttl=30, timeout=0, data={"from": "a refused acquire"})
        assert await holder.release(held, data={"from": "the holder"})
        network.deliver()

    assert len(network.answers) == 1
    assert isinstance(network.answers[0], ClientError)
    assert await manager.get(key) is None
    lease = await holder.acquire(key, timeout=0)
    assert lease.data == {"from": "the holder"}
    await holder.release(lease)


@pytest.mark.parametrize("first_send", ["answered after an SDK re-send", "abandoned by its caller"])
async def test_a_refresh_arriving_late_never_rolls_the_item_back(
    backend: Backend, key: str, first_send: str
) -> None:
    """A holder's older write that lands after a newer one is refused (write sequence).

    The first send of a refresh stays in the network (the SDK re-sends it and that copy
    applies, or its caller gives up on it), the holder refreshes again; then the first send
    arrives. Had it applied, the item would carry the older expiry and version, and
    contenders would take over early.
    """
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    lease = await manager.acquire(key, ttl=30, timeout=0)

    async with anyio.create_task_group() as carrier:
        network = Network(carrier)
        if first_send == "answered after an SDK re-send":
            client.plan("update_item", network.timed_out_then_re_sent())
            await manager.refresh(lease)
        else:
            client.plan("update_item", network.stuck())
            with anyio.move_on_after(0.2):
                await manager.refresh(lease)
        await anyio.sleep(0.01)  # the next refresh's expiry is later by the wall clock
        await manager.refresh(lease)
        newest = lease.expires_at
        network.deliver()

    assert len(network.answers) == 1
    assert isinstance(network.answers[0], ClientError)
    info = await manager.get(key)
    assert info is not None
    assert info.expires_at == newest
    await manager.refresh(lease)  # still ours, and in order
    assert await manager.release(lease)


async def test_a_break_re_sent_after_the_holder_was_granted_again_leaves_that_grant(
    backend: Backend, key: str
) -> None:
    """A re-sent break ends only the grant it read, not a later grant of the same token.

    The holder's acquire applies and its answer is lost; the operator breaks that grant
    (answer lost too); the holder's SDK re-sends its acquire, which is granted anew; then
    the operator's SDK re-sends the break.
    """
    holder_client, operator_client = FaultyClient(backend.client), FaultyClient(backend.client)
    holder = new_manager(holder_client, backend.table, owner="holder")
    operator = new_manager(operator_client, backend.table, owner="operator")
    await holder.get(key)
    granted, broken, granted_again = anyio.Event(), anyio.Event(), anyio.Event()

    async def acquire_re_sent_after_the_break(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
        await perform()  # granted; the answer is lost
        granted.set()
        await broken.wait()
        return await perform()  # the SDK's re-send, answered

    async def break_re_sent_after_the_new_grant(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
        await perform()  # the break applies; the answer is lost
        broken.set()
        await granted_again.wait()
        return await perform()  # the SDK's re-send, answered

    holder_client.plan("update_item", _Step(acquire_re_sent_after_the_break))
    operator_client.plan("update_item", _Step(break_re_sent_after_the_new_grant))
    leases: list[Lease] = []

    async def hold() -> None:
        leases.append(await holder.acquire(key, ttl=30, timeout=5))
        granted_again.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await granted.wait()
        info = await operator.break_lease(key)

    assert info is not None
    assert info.fence < leases[0].fence  # it broke the grant it read
    current = await holder.get(key)
    assert current is not None
    assert (current.owner, current.fence) == ("holder", leases[0].fence)
    assert await holder.release(leases[0])


async def test_a_release_whose_sdk_re_send_was_refused_reports_released(
    backend: Backend, key: str
) -> None:
    """The release applies, its answer is lost, other holders come and go (their markers
    overwrite ours), and the SDK's re-send is refused: still released, before our deadline."""
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    other = new_manager(backend.client, backend.table, owner="other")
    lease = await manager.acquire(key, ttl=30, timeout=0)
    nexts: list[Lease] = []

    async def applied_others_came_then_re_sent(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
        await perform()  # our release applies; its answer is lost
        await other.release(await other.acquire(key, timeout=0))
        nexts.append(await other.acquire(key, timeout=0))
        try:
            return await perform()  # the SDK's re-send
        except ClientError as refused:
            _resent(refused.response)
            raise

    client.plan("update_item", _Step(applied_others_came_then_re_sent))
    assert await manager.release(lease, data={"by": "us"}) is True
    assert lease.data == {"by": "us"}
    await other.release(nexts[0])


@pytest.mark.backends("ddblocal")
async def test_a_lease_whose_late_refresh_applied_is_released_when_its_manager_stops(
    backend: Backend, key: str
) -> None:
    """A refresh answered after the deadline ends the lease for its holder, yet it applied:
    the manager must still release it on exit rather than leave the key blocked."""
    ttl = 3.0  # safety margin ttl/5, so the local deadline is 2.4 s after a write
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    async with manager:
        lease = await manager.acquire(key, ttl=ttl, timeout=0)
        client.plan("update_item", latency(ttl - 0.5, after=True))  # applied, answered late
        with pytest.raises(LeaseLostError) as caught:
            await manager.refresh(lease)
        assert caught.value.reason == "expired"
        await anyio.wait_all_tasks_blocked()  # its heartbeat, if due, has run and found it lost
    assert await manager.get(key) is None


# -- release and data ---------------------------------------------------------------------


def assert_seen_as_released(lease: Lease) -> None:
    """The holder's own view of a lease whose release has started: not held."""
    assert not lease.held
    assert lease.remaining == 0
    with pytest.raises(LeaseLostError) as caught:
        lease.ensure_held()
    assert caught.value.reason == "released"


async def test_a_lease_is_not_held_from_the_moment_its_release_starts(
    backend: Backend, key: str
) -> None:
    """`held` and `ensure_held()` say "not held" while the release is in flight."""
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    lease = await manager.acquire(key, ttl=30, timeout=0)
    sent, answer = anyio.Event(), anyio.Event()

    async def in_flight(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
        sent.set()
        await answer.wait()
        return await perform()

    client.plan("update_item", _Step(in_flight))
    released: list[bool] = []

    async def release() -> None:
        released.append(await manager.release(lease))

    async with anyio.create_task_group() as tg:
        tg.start_soon(release)
        await sent.wait()
        assert_seen_as_released(lease)
        answer.set()
    assert released == [True]


@pytest.mark.backends("ddblocal")  # waits out a lease: the reference emulator only
async def test_a_release_that_gave_up_leaves_the_lease_not_held_and_can_be_finished(
    backend: Backend, key: str
) -> None:
    """Every answer lost: release() raises, the holder's view says released, and a second
    release() finishes the job."""
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table, release_timeout=0.5)
    lease = await manager.acquire(key, ttl=30, timeout=0)
    client.plan("update_item", drop_response(), times=None)  # refusals are lost too

    with pytest.raises(LeaseStoreError):
        await manager.release(lease)

    assert_seen_as_released(lease)
    client.clear()
    assert await manager.release(lease) is True  # the marker says an attempt applied
    assert await manager.get(key) is None


async def test_one_lease_released_from_two_tasks_at_once_is_released_once(
    backend: Backend, key: str
) -> None:
    """Exactly one release does the work; the other returns False and changes nothing."""
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    lease = await manager.acquire(key, ttl=30, timeout=0)
    go = anyio.Event()
    client.plan("update_item", held_until(go))
    results: dict[str, bool] = {}

    async def release(name: str) -> None:
        results[name] = await manager.release(lease, data={"by": name})

    async with anyio.create_task_group() as tg:
        tg.start_soon(release, "A")
        tg.start_soon(release, "B")
        await anyio.wait_all_tasks_blocked()
        go.set()

    assert len(client.calls_of("update_item")) == 2  # the acquire and one release
    assert sorted(results.values()) == [False, True]
    winner = next(name for name, released in results.items() if released)
    next_holder = await manager.acquire(key, timeout=0)
    assert next_holder.data == lease.data == {"by": winner}
    await manager.release(next_holder)


@pytest.fixture
async def previous_data(backend: Backend, key: str) -> dict[str, str]:
    """A released lease on `key` that handed over this data."""
    previous = new_manager(backend.client, backend.table, owner="previous")
    lease = await previous.acquire(key, timeout=0)
    handed_over = {"from": "the previous holder"}
    await previous.release(lease, data=handed_over)
    return handed_over


@pytest.mark.parametrize("data", [None, {"from": "an acquire that failed"}])
async def test_a_failed_acquire_leaves_the_stored_data_as_it_was(
    backend: Backend, key: str, previous_data: dict[str, str], data: object
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    client.plan("update_item", lost_answer())
    with pytest.raises(LeaseStoreError):
        await manager.acquire(key, ttl=30, timeout=0, data=data)

    lease = await new_manager(backend.client, backend.table).acquire(key, timeout=0)
    assert lease.data == previous_data


async def test_a_cancelled_acquire_leaves_the_stored_data_as_it_was(
    backend: Backend, key: str, previous_data: dict[str, str]
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    await manager.get(key)
    client.plan("update_item", latency(5, after=True))  # applied; the answer is slow
    with anyio.move_on_after(0.3):
        await manager.acquire(key, ttl=30, data={"from": "an acquire that was cancelled"})

    lease = await new_manager(backend.client, backend.table).acquire(key, timeout=0)
    assert lease.data == previous_data


@pytest.mark.backends("ddblocal")  # waits out a lease: the reference emulator only
@pytest.mark.usefixtures("previous_data")
async def test_an_acquire_answered_too_late_leaves_the_stored_data_to_its_own_retry(
    backend: Backend, key: str
) -> None:
    """The late grant is not handed out, the retry is; the data handed over is the retry's
    (the same data), and the previous data never reappears."""
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table, safety_margin=0.1)
    ttl = 0.6
    client.plan("update_item", latency(ttl + 0.1, after=True))
    lease = await manager.acquire(key, ttl=ttl, timeout=5, data={"v": 2})
    assert lease.data == {"v": 2}
    info = await manager.get(key)
    assert info is not None
    assert info.data == {"v": 2}
    assert await manager.release(lease)
    next_holder = await manager.acquire(key, timeout=0)
    assert next_holder.data == {"v": 2}  # what the holder handed over, not the older data
    await manager.release(next_holder)


@pytest.mark.backends("ddblocal")  # waits out a lease: the reference emulator only
async def test_an_acquire_that_abandons_a_late_grant_and_is_then_cancelled_restores_the_data(
    backend: Backend, key: str, previous_data: dict[str, str]
) -> None:
    """A late grant is undone and the acquire goes on with a fresh token; when that next
    grant is cancelled too, its undo still puts back the data the first one found."""
    ttl = 0.6
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table, safety_margin=0.1)
    await manager.get(key)
    client.plan("update_item", latency(ttl + 0.1, after=True))  # granted, answered too late
    client.plan("update_item", passed_through(), times=2)  # its undo: revoke, release
    client.plan("update_item", latency(5, after=True))  # the next grant; the answer is slow
    with anyio.move_on_after(ttl + 0.1 + 0.6):
        await manager.acquire(key, ttl=ttl, data={"from": "an acquire that gave up"})

    lease = await new_manager(backend.client, backend.table).acquire(key, timeout=0)
    assert lease.data == previous_data


async def test_a_retry_after_a_lost_answer_does_not_apply_a_second_time(
    backend: Backend, key: str
) -> None:
    """The retry is refused and recognised: one grant, one step of the fence."""
    manager = new_manager(backend.client, backend.table)
    before = await manager.acquire(key, timeout=0)
    await manager.release(before)
    client = FaultyClient(backend.client)
    retried = new_manager(client, backend.table)
    client.plan("update_item", lost_answer())
    lease = await retried.acquire(key, timeout=5)
    assert lease.fence == before.fence + 1
    assert [call.outcome for call in client.calls_of("update_item")][
        1
    ] == "error:ConditionalCheckFailedException"
    await retried.release(lease)


@pytest.mark.backends("dynalite", "ddblocal")  # moto does not enforce the 400 KB item limit
async def test_data_too_large_for_the_copy_an_acquire_keeps_is_refused_clearly(
    backend: Backend, key: str
) -> None:
    """Data stored under the old, larger limit leaves no room for the acquire's copy."""
    manager = new_manager(backend.client, backend.table)
    big = "x" * 300_000  # within the old limit of 350,000 bytes
    await backend.client.put_item(
        TableName=backend.table, Item={"pk": {"S": key}, "data": {"S": json.dumps(big)}}
    )
    with pytest.raises(LeaseStoreError, match="400 KB") as caught:
        await manager.acquire(key, timeout=0, data="y" * 150_000)
    assert not caught.value.transient
    lease = await manager.acquire(key, timeout=0)  # without data= it is granted
    assert lease.data == big
    await manager.release(lease, data=None)
    lease = await manager.acquire(key, timeout=0, data="y" * 150_000)
    await manager.release(lease)


@pytest.mark.backends("ddblocal", "memory")  # waits out a lease: the reference emulator, and memory
async def test_a_lease_lost_to_its_deadline_is_released_once(store: Store, key: str) -> None:
    manager = new_manager(store, safety_margin=0.2)
    lease = await manager.acquire(key, ttl=1.0, timeout=0)
    await anyio.sleep(lease.remaining + 0.01)
    with pytest.raises(LeaseLostError):
        lease.ensure_held()
    assert await manager.release(lease, data={"by": "the first release"}) is True
    assert await manager.release(lease, data={"by": "a second release"}) is False
    assert lease.data == {"by": "the first release"}
