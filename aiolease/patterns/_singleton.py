"""Singleton jobs: run a coroutine function only where its lease is won."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import ParamSpec, TypeVar

from aiolease import LeaseConfigError, LeaseHeldError, LeaseManager

from ._common import (
    ACQUIRE_TIMEOUT,
    TTL,
    Duration,
    check_key,
    check_manager,
    lease_unless_held,
    logger,
    optional_seconds,
    seconds,
)

__all__ = ["singleton"]

P = ParamSpec("P")
T = TypeVar("T")


def _wait_limit(wait: bool | Duration | None) -> float | None:
    """The acquire timeout for `wait`: False tries once, True waits without limit."""
    if wait is True:
        return None
    if wait is False:
        return 0.0
    if isinstance(wait, int | float | timedelta):
        return seconds(wait, name="wait", bounds=ACQUIRE_TIMEOUT)
    raise LeaseConfigError(
        f"wait must be True, False or a number of seconds (or a timedelta), got {wait!r}"
    )


def singleton(
    manager: LeaseManager | Callable[[], LeaseManager],
    key: str | None = None,
    *,
    ttl: Duration | None = None,
    wait: bool | Duration = False,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T | None]]]:
    """Decorate a coroutine function so that one call at a time runs across the fleet.

    Each call takes the lease on `key` (default ``"singleton:<module>.<qualname>"``) and
    runs the function under it (cancelled if the lease is lost; `LeaseLostError` then
    propagates). If the key is held: with ``wait=False`` (the default) the call is
    skipped: it logs who holds the key and returns None; with ``wait=True`` it waits until
    the key is free; with a duration it waits up to that long, then skips.

    `manager` is a `LeaseManager`, or a function returning one, called at each call (for
    managers created at startup, e.g. in an application's lifespan).
    """
    if not isinstance(manager, LeaseManager) and not callable(manager):
        raise LeaseConfigError(
            f"manager must be a LeaseManager or a function returning one, got {manager!r}"
        )
    if key is not None:
        check_key(key)
    lease_ttl = optional_seconds(ttl, name="ttl", bounds=TTL)
    limit = _wait_limit(wait)

    def decorate(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T | None]]:
        if not callable(fn):
            raise LeaseConfigError(f"singleton() decorates a coroutine function, got {fn!r}")
        lease_key = key or f"singleton:{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T | None:
            current = check_manager(manager if isinstance(manager, LeaseManager) else manager())
            async with lease_unless_held(current, lease_key, ttl=lease_ttl, timeout=limit) as lease:
                if isinstance(lease, LeaseHeldError):
                    logger.info(
                        "skipped %s: %r is held by %r (free in at most %.3f s)",
                        getattr(fn, "__qualname__", fn),
                        lease_key,
                        lease.owner,
                        lease.retry_after,
                    )
                    return None
                return await fn(*args, **kwargs)

        return run

    return decorate
