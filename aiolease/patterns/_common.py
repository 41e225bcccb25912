"""Validation and small helpers shared by the patterns."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final, TypeVar

import anyio

from aiolease import Lease, LeaseHeldError, LeaseManager
from aiolease._durations import (
    ACQUIRE_TIMEOUT,
    POLL_INTERVAL,
    TTL,
    Duration,
    optional_seconds,
    seconds,
)
from aiolease._manager import check_manager
from aiolease._validation import check_callable, check_key

__all__ = [
    "ACQUIRE_TIMEOUT",
    "POLL_INTERVAL",
    "TTL",
    "Duration",
    "check_callable",
    "check_key",
    "check_manager",
    "lease_unless_held",
    "logger",
    "optional_seconds",
    "run_bounded",
    "seconds",
]

logger: Final = logging.getLogger("aiolease.patterns")

T = TypeVar("T")


@asynccontextmanager
async def lease_unless_held(
    manager: LeaseManager, key: str, *, ttl: Duration | None, timeout: Duration | None
) -> AsyncIterator[Lease | LeaseHeldError]:
    """``manager.lease(key)``, or the `LeaseHeldError` that kept the block from starting.

    The body gets the lease, or the error when the key was held: a `LeaseHeldError` the
    body itself raises propagates like any other exception, never mistaken for contention.
    """
    block = manager.lease(key, ttl=ttl, timeout=timeout)
    held: LeaseHeldError | None = None
    try:
        lease = await block.__aenter__()
    except LeaseHeldError as error:
        held = error
    if held is not None:
        yield held  # outside the except: the body's own errors are not chained to it
        return
    try:
        yield lease
    except BaseException as error:
        await block.__aexit__(type(error), error, error.__traceback__)  # raises a loss
        raise
    else:
        await block.__aexit__(None, None, None)


async def run_bounded(hook: Callable[[], Awaitable[T]], *, timeout: float, what: str) -> None:
    """Run a cleanup `hook` shielded from cancellation, for at most `timeout` seconds.

    Its exceptions are logged, not raised: the caller is already leaving for a reason of
    its own, which must not be replaced.
    """
    with anyio.move_on_after(timeout, shield=True) as scope:
        try:
            await hook()
        except Exception:
            logger.exception("%s raised", what)
    if scope.cancelled_caught:
        logger.warning("%s did not finish within %.3f s", what, timeout)
