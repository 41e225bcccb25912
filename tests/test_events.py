"""Event hooks: what a manager reports for metrics and tracing."""

from __future__ import annotations

import logging

import anyio
import pytest
from support import new_manager

from aiolease import LeaseConfigError, LeaseEvent, LeaseLostError, LeaseTimeoutError
from aiolease.store import Store
from aiolease.testing import FaultyStore, unavailable


class Recorder:
    def __init__(self) -> None:
        self.events: list[LeaseEvent] = []

    def __call__(self, event: LeaseEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]

    def of(self, kind: str) -> list[LeaseEvent]:
        return [event for event in self.events if event.kind == kind]


async def test_a_grant_a_refresh_and_a_release_are_reported(store: Store, key: str) -> None:
    recorder = Recorder()
    manager = new_manager(store, hooks=[recorder], owner="me")
    lease = await manager.acquire(key, timeout=0)
    await manager.refresh(lease)
    assert await manager.release(lease)
    assert recorder.kinds() == ["acquired", "refreshed", "released"]
    acquired, refreshed, released = recorder.events
    assert (acquired.key, acquired.owner, acquired.fence) == (key, "me", lease.fence)
    assert acquired.duration is not None
    assert acquired.duration >= 0
    assert refreshed.duration is not None
    assert released.released is True
    assert released.duration is not None
    assert released.duration > 0


async def test_contention_and_waiting_are_reported(store: Store, key: str) -> None:
    recorder = Recorder()
    holder = new_manager(store, owner="holder")
    waiter = new_manager(store, hooks=[recorder])
    lease = await holder.acquire(key, ttl=10, timeout=0)
    with pytest.raises(LeaseTimeoutError):
        await waiter.acquire(key, timeout=0.2)
    contended = recorder.of("contended")
    assert contended
    assert contended[0].holder == "holder"
    assert contended[0].retry_after is not None
    assert recorder.of("waited")[-1].reason == "timeout"

    async def release_soon() -> None:
        await anyio.sleep(0.2)
        await holder.release(lease)

    recorder.events.clear()
    async with anyio.create_task_group() as tg:
        tg.start_soon(release_soon)
        won = await waiter.acquire(key, timeout=5)
    assert recorder.kinds()[-2:] == ["waited", "acquired"]
    waited = recorder.of("waited")[-1]
    assert waited.reason == "acquired"
    assert waited.duration is not None
    assert waited.duration >= 0.15
    await waiter.release(won)


async def test_failed_refreshes_and_loss_are_reported(store: Store, key: str) -> None:
    recorder = Recorder()
    faulty = FaultyStore(store)
    manager = new_manager(faulty, hooks=[recorder])
    with pytest.raises(LeaseLostError):
        async with manager.lease(key, ttl=0.9):
            faulty.plan("refresh", unavailable(), probability=1.0)
            await anyio.sleep(5)
    faulty.clear()
    failed = recorder.of("refresh_failed")
    assert failed
    assert failed[0].error is not None
    lost = recorder.of("lost")
    assert [event.reason for event in lost] == ["expired"]


async def test_a_failing_hook_is_logged_and_changes_nothing(
    store: Store, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: LeaseEvent) -> None:
        raise RuntimeError(f"hook broke on {event.kind}")

    recorder = Recorder()
    manager = new_manager(store, hooks=[broken, recorder])
    with caplog.at_level(logging.ERROR, logger="aiolease"):
        lease = await manager.acquire(key, timeout=0)
        assert await manager.release(lease)
    assert recorder.kinds() == ["acquired", "released"]
    assert "hook" in caplog.text


def test_hooks_must_be_callable(store: Store) -> None:
    with pytest.raises(LeaseConfigError, match="hooks must be callables"):
        new_manager(store, hooks=[3])
