"""aiolease.patterns.singleton: a job that runs on one host at a time, or is skipped."""

from __future__ import annotations

import logging
from datetime import timedelta

import anyio
import pytest
from support import FakeClient, new_manager

from aiolease import LeaseConfigError, LeaseManager
from aiolease.patterns import singleton
from aiolease.store import Store


async def test_singleton_skips_when_held(
    store: Store, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    holder = new_manager(store, owner="cron-1")
    manager = new_manager(store, owner="cron-2")
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


async def test_singleton_waits(store: Store, key: str) -> None:
    holder = new_manager(store)
    manager = new_manager(store)

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


async def test_singleton_default_key_and_errors(store: Store) -> None:
    manager = new_manager(store)
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
