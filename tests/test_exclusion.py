"""Mutual exclusion under contention, on the atomic reference (AWS DynamoDB Local).

Moto's conditional writes are not atomic under concurrency, so these tests run on
DynamoDB Local only.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import anyio
import pytest
from support import new_manager

from aiolease import LeaseLostError, LeaseManager, LeaseStoreError
from aiolease.store import Store
from aiolease.testing import FaultyStore, lose_answer, unavailable

pytestmark = pytest.mark.backends("ddblocal", "memory")


@dataclass(frozen=True)
class Grant:
    key: str
    worker: str
    fence: int
    start: float
    end: float


def assert_exclusive(grants: list[Grant]) -> None:
    """No two grants of a key overlap in time, and fences rise in the order of grants."""
    by_key: dict[str, list[Grant]] = {}
    for grant in grants:
        by_key.setdefault(grant.key, []).append(grant)
    for key, key_grants in by_key.items():
        ordered = sorted(key_grants, key=lambda g: g.start)
        for before, after in itertools.pairwise(ordered):
            assert before.end <= after.start, f"{key}: {before} overlaps {after}"
            assert before.fence < after.fence, f"{key}: fence went from {before} to {after}"


async def run_workers(
    managers: list[tuple[str, LeaseManager]], keys: list[str], *, rounds: int, ttl: float
) -> list[Grant]:
    grants: list[Grant] = []

    async def worker(name: str, manager: LeaseManager) -> None:
        rng = random.Random(name)  # noqa: S311
        for _ in range(rounds):
            key = rng.choice(keys)
            try:
                async with manager.lease(key, ttl=ttl, timeout=20) as lease:
                    start = anyio.current_time()
                    await anyio.sleep(rng.uniform(0, 0.02))
                    lease.ensure_held()
                    end = anyio.current_time()
                    grants.append(Grant(key, name, lease.fence, start, end))
            except (LeaseLostError, LeaseStoreError):
                continue

    async with anyio.create_task_group() as tg:
        for name, manager in managers:
            tg.start_soon(worker, name, manager)
    return grants


async def test_many_contenders_never_overlap(store: Store, key: str) -> None:
    keys = [f"{key}:{i}" for i in range(3)]
    managers = [(f"w{i}", new_manager(store, owner=f"w{i}", poll_interval=0.01)) for i in range(8)]
    grants = await run_workers(managers, keys, rounds=15, ttl=2.0)
    assert len(grants) == 8 * 15
    assert {g.worker for g in grants} == {name for name, _ in managers}
    assert_exclusive(grants)


async def test_contenders_never_overlap_while_answers_are_lost_and_throttled(
    store: Store, key: str
) -> None:
    keys = [f"{key}:{i}" for i in range(2)]
    managers = []
    for i in range(6):
        faulty = FaultyStore(store)
        for j, operation in enumerate(("acquire", "refresh", "release", "revoke")):  # the writes
            faulty.plan(operation, lose_answer(), probability=0.15, seed=10 * i + j)
            faulty.plan(operation, unavailable(), probability=0.1, seed=100 + 10 * i + j)
        managers.append(
            (
                f"f{i}",
                new_manager(faulty, owner=f"f{i}", poll_interval=0.01, backoff=0.05),
            )
        )
    grants = await run_workers(managers, keys, rounds=10, ttl=2.0)
    assert len(grants) >= 6 * 10 * 0.8
    assert_exclusive(grants)


def test_the_checker_catches_an_overlap() -> None:
    overlapping = [Grant("k", "a", 1, 0.0, 2.0), Grant("k", "b", 2, 1.0, 3.0)]
    with pytest.raises(AssertionError, match="overlaps"):
        assert_exclusive(overlapping)
    backwards = [Grant("k", "a", 2, 0.0, 1.0), Grant("k", "b", 1, 1.0, 2.0)]
    with pytest.raises(AssertionError, match="fence went"):
        assert_exclusive(backwards)
