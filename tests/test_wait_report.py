"""A waiting acquire is never silent: store failures and a held key reach the logs and hooks."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support import new_manager

import aiolease._wait_report
from aiolease import LeaseEvent, LeaseStoreError, LeaseTimeoutError
from aiolease.store import Outcome, Store
from aiolease.testing import (
    Fault,
    FaultContext,
    FaultyStore,
    Perform,
    denied,
    latency,
    unavailable,
)


def aiolease_records(
    caplog: pytest.LogCaptureFixture, level: int, text: str
) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "aiolease" and r.levelno == level and text in r.getMessage()
    ]


async def test_store_failures_during_a_wait_are_warned_at_once_and_then_at_a_bounded_rate(
    store: Store, key: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    repeat = 0.3
    monkeypatch.setattr(aiolease._wait_report, "REPEAT", repeat)
    events: list[LeaseEvent] = []
    faulty = FaultyStore(store)
    manager = new_manager(faulty, hooks=[events.append], backoff=0.02)
    await manager.get(key)  # the table check passes before the outage
    faulty.plan("acquire", unavailable(), probability=1.0)
    caplog.set_level(logging.DEBUG, logger="aiolease")
    with pytest.raises(LeaseStoreError):
        await manager.acquire(key, timeout=1.0)

    warned = aiolease_records(caplog, logging.WARNING, "retrying, failing for")
    failed = [e for e in events if e.kind == "store_failed"]
    assert len(failed) == len(faulty.calls_of("acquire")) > len(warned) >= 2
    assert f"acquiring {key!r} on {store.location}: acquire" in warned[0].getMessage()
    assert "the store is unavailable" in warned[0].getMessage()
    assert "failing for 0.0 s" in warned[0].getMessage()
    # No two warnings closer than the repeat interval; the failures between are DEBUG.
    times = [r.created for r in warned]
    assert all(b - a >= repeat - 0.01 for a, b in itertools.pairwise(times))
    assert aiolease_records(caplog, logging.DEBUG, "retrying, failing for")
    # Every failure is an event, with the error and how long the store has been failing.
    assert all(isinstance(e.error, LeaseStoreError) for e in failed)
    assert failed[0].duration == 0
    durations = [e.duration or 0.0 for e in failed]
    assert durations == sorted(durations)
    assert durations[-1] >= 1.0 - 0.2


async def test_the_stores_recovery_is_logged_and_the_lease_granted(
    store: Store, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    faulty = FaultyStore(store)
    manager = new_manager(faulty, backoff=0.02)
    await manager.get(key)
    faulty.plan("acquire", unavailable(), times=3)
    caplog.set_level(logging.INFO, logger="aiolease")
    lease = await manager.acquire(key, timeout=5)
    assert len(aiolease_records(caplog, logging.WARNING, "retrying, failing for")) == 1
    assert aiolease_records(caplog, logging.INFO, "the store answers again after")
    await manager.release(lease)


async def test_a_failing_table_check_is_reported_like_a_failing_acquire(
    store: Store, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[LeaseEvent] = []
    faulty = FaultyStore(store)
    faulty.plan("check_table", unavailable(), times=2)
    manager = new_manager(faulty, hooks=[events.append], backoff=0.02)
    caplog.set_level(logging.INFO, logger="aiolease")
    lease = await manager.acquire(key, timeout=5)
    assert [e.kind for e in events].count("store_failed") == 2
    assert len(aiolease_records(caplog, logging.WARNING, "retrying, failing for")) == 1
    await manager.release(lease)


async def test_waiting_on_a_held_key_logs_the_holder_once_and_each_poll_at_debug(
    store: Store, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    holder = new_manager(store, owner="holder")
    waiter = new_manager(store, owner="waiter", poll_interval=0.05)
    lease = await holder.acquire(key, ttl=30)
    caplog.set_level(logging.DEBUG, logger="aiolease")
    with pytest.raises(LeaseTimeoutError):
        await waiter.acquire(key, timeout=0.5)
    told = aiolease_records(caplog, logging.INFO, f"waiting for {key!r}: held by 'holder'")
    assert len(told) == 1
    assert "may be taken over in" in told[0].getMessage()
    assert aiolease_records(caplog, logging.DEBUG, f"waiting for {key!r}")
    await holder.release(lease)


class WithoutTheRecord(Fault):
    """Answer a refused write without its record, as some servers do (dynalite)."""

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        outcome = await perform()
        return outcome if outcome.applied else Outcome(applied=False, record=None)


async def test_a_refusal_whose_holder_cannot_be_read_is_a_store_failure(
    store: Store, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    holder = new_manager(store, owner="holder")
    lease = await holder.acquire(key, ttl=30)
    events: list[LeaseEvent] = []
    faulty = FaultyStore(store)
    waiter = new_manager(faulty, hooks=[events.append], poll_interval=0.05)
    await waiter.get(key)
    faulty.plan("acquire", WithoutTheRecord(), times=None)
    faulty.plan("get", denied(), times=None)  # the read-back fails, and cannot heal
    caplog.set_level(logging.INFO, logger="aiolease")
    with pytest.raises(LeaseTimeoutError):
        await waiter.acquire(key, timeout=0.5)
    failed = [e for e in events if e.kind == "store_failed"]
    assert failed
    assert all("access denied" in str(e.error) for e in failed)
    assert (failed[-1].duration or 0.0) > 0  # one run of failures, not many
    assert len(aiolease_records(caplog, logging.WARNING, "retrying, failing for")) == 1
    await holder.release(lease)


class HandOverFirst(Fault):
    """Before the request it hits is sent, the key passes from one holder to another."""

    def __init__(self, hand_over: Callable[[], Awaitable[object]]) -> None:
        self.hand_over = hand_over

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        await self.hand_over()
        return await perform()


async def test_a_new_holder_is_told_again(
    store: Store, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = new_manager(store, owner="first")
    second = new_manager(store, owner="second")
    faulty = FaultyStore(store)
    waiter = new_manager(faulty, owner="waiter", poll_interval=0.05)
    lease = await first.acquire(key, ttl=30)

    async def hand_over() -> None:
        await first.release(lease)
        await second.acquire(key, ttl=30, timeout=0)

    faulty.plan("acquire", latency(0), times=2)  # two polls find "first"...
    faulty.plan("acquire", HandOverFirst(hand_over), times=1)  # ...then it hands over
    caplog.set_level(logging.INFO, logger="aiolease")
    with pytest.raises(LeaseTimeoutError) as caught:
        await waiter.acquire(key, timeout=0.6)
    assert caught.value.owner == "second"
    told = [r.getMessage() for r in aiolease_records(caplog, logging.INFO, "waiting for")]
    assert len(told) == 2
    assert "held by 'first'" in told[0]
    assert "held by 'second'" in told[1]
    await second.break_lease(key)
