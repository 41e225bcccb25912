"""Races found by an adversarial review, each replayed as one deterministic schedule.

Every test here holds requests "in the network" on events, loses answers after the write
applied, or lets the SDK re-send a request, so that the interleaving that broke a rule
happens every time, not by luck of the clock. Each names the rule it pins down.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from conftest import Backend
from support import new_manager

from aiolease import Lease
from aiolease.testing import (
    Fault,
    FaultContext,
    FaultyClient,
    Perform,
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


@pytest.mark.parametrize("acquires", [1, 3])
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
    deliver = anyio.Event()
    answers: list[object] = []

    async with anyio.create_task_group() as network:

        async def stuck_in_the_network(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
            async def arrive_later() -> None:
                await deliver.wait()
                try:
                    answers.append(await perform())
                except ClientError as refused:
                    answers.append(refused)

            network.start_soon(arrive_later)
            await anyio.sleep_forever()  # the caller never hears back

        for _ in range(acquires):
            client.plan("update_item", _Step(stuck_in_the_network))
            with anyio.move_on_after(0.3) as waiting:
                await manager.acquire(key, ttl=30, data={"from": "an acquire that gave up"})
            assert waiting.cancelled_caught
        deliver.set()

    assert len(answers) == acquires
    assert all(isinstance(answer, ClientError) for answer in answers)  # all refused
    assert await manager.get(key) is None
    other = new_manager(backend.client, backend.table, owner="other")
    lease = await other.acquire(key, timeout=0)
    assert lease.data != {"from": "an acquire that gave up"}
    await other.release(lease)
