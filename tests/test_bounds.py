"""Every duration has bounds, and every value read from the store is survivable.

Durations outside their bounds are refused with `LeaseConfigError` before any request; a
record another (older, buggy or hostile) writer stored with absurd values is reported,
never a crash, and cannot block a key for longer than the longest lease.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from support import Backend, FakeClient, new_manager

from aiolease import LeaseConfigError, LeaseHeldError, LeaseStoreError

YEAR = timedelta(days=365)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"default_ttl": 0.099}, "default_ttl must be at least 100 ms"),
        ({"default_ttl": YEAR + timedelta(seconds=1)}, "default_ttl must be at most 365 days"),
        ({"default_ttl": timedelta.max}, "default_ttl must be at most 365 days"),
        ({"default_ttl": 10**400}, "default_ttl must be at most 365 days"),
        ({"default_ttl": math.inf}, "default_ttl must be finite"),
        ({"safety_margin": 0}, "safety_margin (0.0 s) must be at least ttl/1000 + 1 ms"),
        ({"safety_margin": 0.0005}, "must be at least ttl/1000 + 1 ms"),
        ({"heartbeat_interval": 0.001}, "heartbeat_interval must be at least 10 ms"),
        ({"max_clock_skew": timedelta(days=2)}, "max_clock_skew must be at most 1 day"),
        ({"poll_interval": 0.0001}, "poll_interval must be at least 1 ms"),
        ({"poll_interval": 7200}, "poll_interval must be at most 1 hour"),
        ({"backoff": 10**400}, "backoff must be at most 1 hour"),
        ({"release_timeout": 0.001}, "release_timeout must be at least 10 ms"),
        ({"ttl_buffer": YEAR * 2}, "ttl_buffer must be at most 365 days"),
    ],
)
def test_durations_out_of_bounds_are_refused_on_construction(
    options: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(LeaseConfigError) as caught:
        new_manager(FakeClient(), "leases", **options)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"ttl": timedelta.max}, "ttl must be at most 365 days"),
        ({"ttl": 10**400}, "ttl must be at most 365 days"),
        ({"ttl": 0.001}, "ttl must be at least 100 ms"),
        ({"timeout": 10**400}, "timeout must be at most 365 days"),
        ({"timeout": timedelta.max}, "use timeout=None to wait without a limit"),
    ],
)
async def test_durations_out_of_bounds_are_refused_before_any_request(
    kwargs: dict[str, Any], fragment: str
) -> None:
    manager = new_manager(FakeClient(), "leases")
    with pytest.raises(LeaseConfigError) as caught:
        await manager.acquire("k", **kwargs)
    assert fragment in str(caught.value)
    with pytest.raises(LeaseConfigError):
        manager.lease("k", **kwargs)


def test_the_bounds_themselves_are_accepted() -> None:
    manager = new_manager(
        FakeClient(),
        "leases",
        default_ttl=YEAR,
        max_clock_skew=timedelta(days=1),
        poll_interval=3600,
        backoff=0.001,
        release_timeout=0.01,
        ttl_buffer=YEAR,
    )
    assert manager.default_ttl == YEAR.total_seconds()
    new_manager(FakeClient(), "leases", default_ttl=0.1, safety_margin=0.0012)


@pytest.mark.parametrize(
    ("stored", "outcome"),
    [
        ({"expires_at": {"N": "9" * 30}, "duration": {"N": "9" * 30}}, "held"),
        ({"expires_at": {"N": "-" + "9" * 30}, "duration": {"N": "-5"}}, "granted"),
        pytest.param(
            {"expires_at": {"S": "soon"}, "fence": {"S": "x"}, "data": {"S": "not json"}},
            "held",
            # moto answers 500 to a condition that compares a string with a number.
            marks=pytest.mark.backends("dynalite", "ddblocal"),
        ),
        ({"expires_at": {"N": "1000"}, "duration": {"N": "0.5"}, "fence": {"N": "2.5"}}, "refused"),
    ],
    ids=["far future", "far past", "wrong types", "fractions"],
)
async def test_absurd_stored_values_are_reported_never_a_crash(
    backend: Backend, key: str, stored: dict[str, Any], outcome: str
) -> None:
    """get(), list() and a contender's acquire() all survive such a record."""
    item = {"pk": {"S": key}, "token": {"S": "t"}, "owner": {"S": "hostile"}, "version": {"S": "v"}}
    await backend.client.put_item(TableName=backend.table, Item=item | stored)
    manager = new_manager(backend.client, backend.table)
    info = await manager.get(key)
    listed = [i async for i in manager.list(prefix=key)]
    assert listed == ([] if info is None else [info])
    if outcome == "held":
        with pytest.raises(LeaseHeldError) as held:
            await manager.acquire(key, timeout=0)
        assert held.value.owner == "hostile"
        assert held.value.retry_after is not None
        assert 0 <= held.value.retry_after <= YEAR.total_seconds()
    elif outcome == "refused":  # a fence our write cannot add one to: it says so
        with pytest.raises(LeaseStoreError, match="fence") as refused:
            await manager.acquire(key, timeout=0)
        assert not refused.value.transient
    else:
        lease = await manager.acquire(key, timeout=0)
        await manager.release(lease)


async def test_a_stored_absurd_duration_is_timed_for_at_most_the_longest_lease(
    backend: Backend, key: str
) -> None:
    item = {
        "pk": {"S": key},
        "token": {"S": "t"},
        "owner": {"S": "hostile"},
        "version": {"S": "v"},
        "expires_at": {"N": "9" * 20},
        "duration": {"N": "9" * 20},
    }
    await backend.client.put_item(TableName=backend.table, Item=item)
    manager = new_manager(backend.client, backend.table)
    with pytest.raises(LeaseHeldError) as caught:
        await manager.acquire(key, timeout=0)
    assert caught.value.retry_after is not None
    assert caught.value.retry_after <= YEAR.total_seconds()


@pytest.mark.parametrize("where", ["key", "owner", "prefix", "sort_key", "data"])
async def test_strings_that_are_not_unicode_are_refused(where: str) -> None:
    lone = "a\ud800b"
    options: dict[str, Any] = {}
    if where == "owner":
        options["owner"] = lone
    if where == "sort_key":
        options["sort_key"] = ("sk", lone)
    with pytest.raises(LeaseConfigError, match="not valid Unicode"):
        manager = new_manager(FakeClient(), "leases", **options)
        if where == "key":
            await manager.acquire(lone)
        elif where == "prefix":
            [i async for i in manager.list(prefix=lone)]
        elif where == "data":
            await manager.acquire("k", data={"x": lone})
