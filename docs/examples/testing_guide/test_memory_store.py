"""Lease-handling code tested without DynamoDB: `MemoryStore` behind a real manager."""

from typing import Any

import pytest

from aiolease import LeaseHeldError, LeaseManager, LeaseStoreError
from aiolease.testing import (
    FaultyStore,
    MemoryStore,
    Operation,
    lose_answer,
    unavailable,
)


async def rebuild_report(manager: LeaseManager) -> str:
    """The code under test: rebuild the report unless another worker is on it."""
    try:
        async with manager.lease("report:nightly", timeout=0) as lease:
            return f"rebuilt under fence {lease.fence}"
    except LeaseHeldError as held:
        return f"skipped: {held.owner} is on it"


# --8<-- [start:memory]
async def test_only_one_worker_rebuilds_the_report() -> None:
    store = MemoryStore()  # one store shared by the "hosts" of this test
    first = LeaseManager(store, owner="worker-1")
    second = LeaseManager(store, owner="worker-2")
    async with first.lease("report:nightly"):
        assert await rebuild_report(second) == "skipped: worker-1 is on it"
    assert (await rebuild_report(second)).startswith("rebuilt")
    # --8<-- [end:memory]


# --8<-- [start:intercept]
async def test_a_lost_answer_still_gives_the_lease() -> None:
    async def lose_the_first_answer(operation: Operation[Any]) -> Any:
        answer = operation.apply()  # the write lands in the store...
        if operation.name == "acquire" and operation.applied == 1 and not lost:
            lost.append(operation)
            raise LeaseStoreError(  # ...and its answer is lost on the way back
                "connection reset",
                operation="UpdateItem",
                transient=True,
                maybe_applied=True,
            )
        return answer

    lost: list[Operation[Any]] = []
    manager = LeaseManager(MemoryStore(intercept=lose_the_first_answer), backoff=0.01)
    async with manager.lease(
        "report:nightly", timeout=5
    ) as lease:  # retried until then
        assert lease.held  # the retry was recognised as our own grant
    assert lost
    # --8<-- [end:intercept]


# --8<-- [start:faulty-store]
async def test_the_report_survives_a_lost_answer_and_an_outage() -> None:
    store = FaultyStore(
        MemoryStore()
    )  # or FaultyStore(DynamoDBStore(client, "leases"))
    store.plan("acquire", lose_answer())  # applied, answer lost
    store.plan(
        "acquire", unavailable(), times=2
    )  # then two attempts fail before the store
    manager = LeaseManager(store, backoff=0.01)
    async with manager.lease(
        "report:nightly", timeout=5
    ) as lease:  # retried until then
        assert lease.held
    assert [call.outcome for call in store.calls_of("acquire")] == [
        "dropped:ok",
        "fault:unavailable",
        "fault:unavailable",
        "ok",  # refused, showing our own token: the manager knows the grant is its own
    ]
    # --8<-- [end:faulty-store]


def test_dynamodb_options_are_refused_with_a_store() -> None:
    options: dict[str, Any] = {"sort_key": ("sk", "lease")}
    with pytest.raises(ValueError, match="sort_key is an option of the DynamoDB store"):
        LeaseManager(MemoryStore(), **options)
