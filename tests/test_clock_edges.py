"""A suspended host, and a manager used from the wrong event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from support import Backend, FakeClient, new_manager

from aiolease import LeaseConfigError, LeaseLostError, LeaseStoreError
from aiolease.store import Store
from aiolease.testing import Fault, FaultContext, FaultyClient, Perform


class Suspendable:
    """A suspend-aware clock for a host whose suspends the test decides."""

    def __init__(self) -> None:
        self.suspended = 0.0

    def __call__(self) -> float:
        return anyio.current_time() + self.suspended

    def suspend(self, seconds: float) -> None:
        """The host slept `seconds`: its monotonic clock stood still, this one did not."""
        self.suspended += seconds


async def test_after_a_host_suspend_longer_than_the_lease_it_is_not_held(
    store: Store, key: str
) -> None:
    clock = Suspendable()
    manager = new_manager(store, suspend_clock=clock)
    lease = await manager.acquire(key, ttl=30, timeout=0)
    assert lease.remaining > 20
    clock.suspend(25)  # less than the ttl, more than it minus the safety margin
    assert not lease.held
    assert lease.remaining == 0
    with pytest.raises(LeaseLostError) as caught:
        lease.ensure_held()
    assert caught.value.reason == "expired"
    with pytest.raises(LeaseLostError):
        await manager.refresh(lease)
    await manager.release(lease)


async def test_a_short_suspend_only_shortens_the_lease(store: Store, key: str) -> None:
    clock = Suspendable()
    manager = new_manager(store, suspend_clock=clock)
    lease = await manager.acquire(key, ttl=30, timeout=0)
    before = lease.remaining
    clock.suspend(5)
    assert lease.held
    assert before - 5 - 1 <= lease.remaining <= before - 5
    await manager.refresh(lease)  # the refresh counts from its own send again
    assert lease.remaining > 20
    assert await manager.release(lease)


@pytest.mark.backends("ddblocal", "memory")
async def test_a_lease_block_resumed_after_a_suspend_is_stopped_by_its_next_heartbeat(
    store: Store, key: str
) -> None:
    clock = Suspendable()
    ttl = 1.5  # heartbeat every 0.5 s
    manager = new_manager(store, suspend_clock=clock)
    with pytest.raises(LeaseLostError) as caught:
        async with manager.lease(key, ttl=ttl):
            clock.suspend(10 * ttl)
            await anyio.sleep(10 * ttl)  # cancelled by the next heartbeat, not by this
    assert caught.value.reason == "expired"


def test_a_manager_used_from_a_second_event_loop_says_so() -> None:
    manager = new_manager(FakeClient(), "leases")

    async def use(key: str) -> None:
        await manager.get(key)

    with pytest.raises(LeaseConfigError, match="key must not be empty"):
        asyncio.run(use(""))  # first use: this loop
    with pytest.raises(LeaseConfigError, match="another event loop"):
        asyncio.run(use("k"))


class _ClosedLoop(Fault):
    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        raise RuntimeError("Event loop is closed")


async def test_a_client_of_a_closed_event_loop_is_not_retried(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    await manager.get(key)
    client.plan("update_item", _ClosedLoop(), times=None)
    with anyio.fail_after(5), pytest.raises(LeaseStoreError, match="event loop") as caught:
        await manager.acquire(key)  # waits without limit: must not retry forever
    assert not caught.value.transient
    acquires = [c for c in client.calls_of("update_item") if "#own" in c.params["UpdateExpression"]]
    assert len(acquires) == 1  # not retried (its undo is tried once, and fails the same way)
