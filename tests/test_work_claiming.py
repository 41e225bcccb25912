"""aiolease.patterns claim_any and claim_each: workers spread over keys, each key done once.

Tests of mutual exclusion between concurrent callers run on DynamoDB Local only (`ATOMIC`):
moto's conditional writes are not atomic under concurrency.
"""

from __future__ import annotations

from collections import Counter

import anyio
import pytest
from support import ATOMIC, FakeClient, new_manager

from aiolease import Lease, LeaseConfigError, LeaseManager
from aiolease.patterns import DONE, claim_any, claim_each, is_done
from aiolease.store import Store


@ATOMIC
async def test_claim_any_spreads_workers_over_keys(store: Store, key: str) -> None:
    keys = [f"{key}:{i}" for i in range(5)]
    managers = [new_manager(store, owner=f"w{i}") for i in range(5)]
    claimed: dict[str, Lease | None] = {}

    async def worker(manager: LeaseManager) -> None:
        claimed[manager.owner] = await claim_any(manager, keys)

    async with anyio.create_task_group() as tg:
        for manager in managers:
            tg.start_soon(worker, manager)
    leases = [lease for lease in claimed.values() if lease is not None]
    assert sorted(lease.key for lease in leases) == sorted(keys)

    extra = new_manager(store)
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


async def test_claim_any_in_order_and_skip(store: Store, key: str) -> None:
    manager = new_manager(store)
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
async def test_claim_each_runs_every_key_once(store: Store, key: str) -> None:
    keys = [f"{key}:{i}" for i in range(8)]
    managers = [new_manager(store, owner=f"w{i}") for i in range(3)]
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
