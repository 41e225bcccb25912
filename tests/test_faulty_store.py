"""`FaultyStore` fails store operations the way a store fails, on any store."""

from __future__ import annotations

import contextlib

import anyio
import pytest
from support import new_manager

from aiolease import LeaseStoreError
from aiolease.store import UNSET, Now, Outcome, Store
from aiolease.testing import (
    Fault,
    FaultyClient,
    FaultyStore,
    MemoryStore,
    denied,
    drop_response,
    hang,
    latency,
    lose_answer,
    resend,
    unavailable,
)


def now() -> Now:
    return Now(0.0, 1.0)


async def grant(store: Store, key: str, *, owner: str = "o") -> Outcome:
    return await store.acquire(
        key,
        owner=owner,
        token=f"{owner}:1",
        version="v1",
        ttl=10,
        seen_version=None,
        data=UNSET,
        now=now(),
    )


def test_it_is_a_store_with_the_wrapped_stores_table_and_capabilities() -> None:
    inner = MemoryStore(table="mine")
    faulty = FaultyStore(inner)
    assert isinstance(faulty, Store)
    assert faulty.table == "mine"
    assert faulty.capabilities == inner.capabilities
    assert new_manager(faulty).table == "mine"


def test_plans_are_checked_where_they_are_made() -> None:
    faulty = FaultyStore(MemoryStore())
    with pytest.raises(ValueError, match="'update_item' is not an intercepted operation"):
        faulty.plan("update_item", lose_answer())
    with pytest.raises(ValueError, match=r"acts on a client.*lose_answer\(\)"):
        faulty.plan("acquire", drop_response())
    with pytest.raises(ValueError, match=r"acts on a store.*drop_response\(\)"):
        FaultyClient(object()).plan("update_item", lose_answer())
    with pytest.raises(ValueError, match="times must be"):
        faulty.plan("acquire", hang(), times=0)


async def test_a_lost_answer_was_applied_and_may_have_been() -> None:
    inner = MemoryStore()
    faulty = FaultyStore(inner)
    faulty.plan("acquire", lose_answer())
    with pytest.raises(LeaseStoreError) as caught:
        await grant(faulty, "k")
    assert (caught.value.transient, caught.value.maybe_applied) == (True, True)
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert caught.value.operation == "acquire"
    assert inner.peek("k") is not None  # applied
    assert [(c.operation, c.outcome, c.sent) for c in faulty.calls] == [
        ("acquire", "dropped:ok", True)
    ]


@pytest.mark.parametrize(
    ("fault", "transient", "outcome"),
    [(unavailable(), True, "fault:unavailable"), (denied(), False, "fault:denied")],
)
async def test_a_failure_before_the_store_applies_nothing(
    fault: Fault, transient: bool, outcome: str
) -> None:
    inner = MemoryStore()
    faulty = FaultyStore(inner)
    faulty.plan("acquire", fault)
    with pytest.raises(LeaseStoreError) as caught:
        await grant(faulty, "k")
    assert (caught.value.transient, caught.value.maybe_applied) == (transient, False)
    assert caught.value.__cause__ is not None
    assert inner.peek("k") is None
    assert inner.operations == 0
    assert [(c.outcome, c.sent) for c in faulty.calls] == [(outcome, False)]


async def test_a_resent_acquire_is_refused_and_shows_the_senders_own_token() -> None:
    inner = MemoryStore()
    faulty = FaultyStore(inner)
    faulty.plan("acquire", resend())
    outcome = await grant(faulty, "k", owner="me")
    assert not outcome.applied
    assert outcome.record is not None
    assert (outcome.record.owner, outcome.record.token) == ("me", "me:1")
    assert outcome.resent  # as a driver that re-sent it says
    assert inner.operations == 2
    assert faulty.calls[0].outcome == "resent:ok"


async def test_a_manager_gets_its_lease_through_a_resent_acquire() -> None:
    faulty = FaultyStore(MemoryStore())
    faulty.plan("acquire", resend())
    manager = new_manager(faulty)
    lease = await manager.acquire("k", timeout=0)
    assert lease.held
    assert await manager.release(lease)


async def test_latency_delays_and_hang_never_answers() -> None:
    faulty = FaultyStore(MemoryStore())
    faulty.plan("get", latency(0.2))
    started = anyio.current_time()
    assert await faulty.get("k", now=now()) is None
    assert anyio.current_time() - started >= 0.2
    faulty.plan("get", hang())
    with anyio.move_on_after(0.1) as scope:
        await faulty.get("k", now=now())
    assert scope.cancelled_caught
    assert faulty.calls[-1].outcome == "cancelled"


async def test_rules_pick_their_operations_and_probabilities_are_seeded() -> None:
    async def outcomes(seed: int) -> list[str]:
        faulty = FaultyStore(MemoryStore())
        faulty.plan("*", unavailable(), probability=0.5, seed=seed)
        faulty.plan("get", denied(), times=None)  # consulted second: only what the first spares
        for _ in range(20):
            with contextlib.suppress(LeaseStoreError):
                await faulty.get("k", now=now())
        return [c.outcome for c in faulty.calls_of("get")]

    first = await outcomes(7)
    assert set(first) == {"fault:denied", "fault:unavailable"}
    assert await outcomes(7) == first
    assert await outcomes(8) != first
