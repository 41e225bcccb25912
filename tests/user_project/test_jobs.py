"""A user's tests of code that takes leases, with only aiolease[testing] installed."""

import pytest

from aiolease import LeaseHeldError, LeaseManager
from aiolease.testing import FaultyStore, ManagerOptions, MemoryStore, lose_answer


async def nightly_job(manager: LeaseManager) -> str:
    try:
        async with manager.lease("job:nightly", timeout=0) as lease:
            return f"ran under fence {lease.fence}"
    except LeaseHeldError as held:
        return f"skipped: {held.owner} runs it"


@pytest.fixture
def aiolease_manager_options() -> ManagerOptions:
    return {"default_ttl": 5, "poll_interval": 0.05}


async def test_the_job_runs_once_on_the_local_dynamodb(lease_manager: LeaseManager) -> None:
    other = LeaseManager(lease_manager.store, owner="other")
    async with other.lease("job:nightly"):
        assert await nightly_job(lease_manager) == "skipped: other runs it"
    assert (await nightly_job(lease_manager)).startswith("ran under fence ")


async def test_the_job_survives_a_lost_answer_on_the_memory_store() -> None:
    store = FaultyStore(MemoryStore())
    store.plan("acquire", lose_answer())
    manager = LeaseManager(store, backoff=0.01)
    async with manager.lease("job:nightly", timeout=5) as lease:
        assert lease.held
