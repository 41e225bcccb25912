"""Work claiming: competing consumers share a batch of keys without double work."""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, TypeVar

import anyio

from aiolease import Lease, LeaseConfigError, LeaseHeldError, LeaseManager

from ._common import (
    ACQUIRE_TIMEOUT,
    Duration,
    check_callable,
    check_key,
    check_manager,
    lease_unless_held,
    logger,
    optional_seconds,
)

__all__ = ["DONE", "claim_any", "claim_each", "is_done"]

T = TypeVar("T")

#: The lease data `claim_each` leaves on a key it finished (kept after release).
DONE: Final[dict[str, Any]] = {"aiolease.done": True}


def is_done(lease: Lease) -> bool:
    """True if `lease` carries the data `claim_each` leaves on a finished key."""
    return isinstance(lease.data, dict) and lease.data.get("aiolease.done") is True


def _keys(keys: Iterable[str], *, shuffle: bool) -> list[str]:
    if isinstance(keys, str):
        raise LeaseConfigError("keys must be an iterable of keys, not one string")
    listed = [check_key(key, name="each key") for key in keys]
    unique = list(dict.fromkeys(listed))
    if shuffle:
        random.shuffle(unique)
    return unique


async def claim_any(
    manager: LeaseManager,
    keys: Iterable[str],
    *,
    ttl: Duration | None = None,
    timeout: Duration | None = 0,
    shuffle: bool = True,
    skip: Callable[[Lease], bool] | None = None,
) -> Lease | None:
    """Claim one free key out of `keys` and return its lease, or None if none was free.

    Each key is tried once (``timeout=0``), in random order with `shuffle` (so that
    workers starting together spread over the keys) or in the given order. With
    `timeout` > 0 the keys are tried again every ``manager.poll_interval`` until one is
    claimed or `timeout` seconds have passed; None keeps trying until one is claimed.
    A lease for which `skip(lease)` is true (for example `is_done`, for keys finished
    earlier) is released at once and not returned.

    The lease comes from ``manager.acquire()``: it is heartbeated while the manager runs
    (``async with manager:``); release it with ``manager.release(lease)`` when done.
    """
    check_manager(manager)
    limit = optional_seconds(timeout, name="timeout", bounds=ACQUIRE_TIMEOUT)
    if skip is not None:
        check_callable(skip=skip)
    candidates = _keys(keys, shuffle=shuffle)
    give_up_at = math.inf if limit is None else anyio.current_time() + limit
    while True:
        for key in candidates:
            try:
                lease = await manager.acquire(key, ttl=ttl, timeout=0)
            except LeaseHeldError:
                continue
            if skip is not None and skip(lease):
                await manager.release(lease)
                continue
            return lease
        left = give_up_at - anyio.current_time()
        if left <= 0:
            return None
        await anyio.sleep(min(manager.poll_interval, left))


async def claim_each(
    manager: LeaseManager,
    keys: Iterable[str],
    fn: Callable[[Lease], Awaitable[T]],
    *,
    ttl: Duration | None = None,
    shuffle: bool = True,
) -> dict[str, T]:
    """Work through `keys` with other workers: run ``await fn(lease)`` for each one won.

    Every key is tried once (in random order with `shuffle`); a key held by another
    worker is skipped, and so is a key already finished, by this worker or another:
    after `fn` returns, the lease's data is set to `DONE` before it is released, and a
    key whose lease carries `DONE` is not run again. `fn` runs under ``manager.lease()``:
    it is cancelled if the lease is lost (`LeaseLostError` is raised, and the key stays
    unfinished). Exceptions from `fn` propagate, leaving that key unfinished.

    Returns the results of the keys this worker ran, by key. Keys held by others while
    this worker passed are not waited for: call again to pick up the ones left over.
    """
    check_manager(manager)
    check_callable(fn=fn)
    results: dict[str, T] = {}
    for key in _keys(keys, shuffle=shuffle):
        async with lease_unless_held(manager, key, ttl=ttl, timeout=0) as lease:
            if isinstance(lease, LeaseHeldError):
                logger.debug("claim_each: %r is held by %r; skipped", key, lease.owner)
                continue
            if is_done(lease):
                continue
            result = await fn(lease)
            await manager.refresh(lease, data=DONE)
        results[key] = result
    return results
