"""Validation and small helpers shared by the patterns."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import anyio

from aiolease import LeaseConfigError, LeaseManager
from aiolease._durations import (
    ACQUIRE_TIMEOUT,
    POLL_INTERVAL,
    TTL,
    Duration,
    optional_seconds,
    seconds,
)

__all__ = [
    "ACQUIRE_TIMEOUT",
    "POLL_INTERVAL",
    "TTL",
    "Duration",
    "check_callable",
    "check_key",
    "check_manager",
    "logger",
    "optional_seconds",
    "run_bounded",
    "seconds",
]

logger: Final = logging.getLogger("aiolease.patterns")

T = TypeVar("T")


def check_manager(manager: object) -> LeaseManager:
    """`manager` if it is a `LeaseManager`, else `LeaseConfigError`."""
    if not isinstance(manager, LeaseManager):
        raise LeaseConfigError(f"expected a LeaseManager, got {type(manager).__name__}")
    return manager


def check_key(key: object, *, name: str = "key") -> str:
    """`key` if it is a non-empty string, else `LeaseConfigError`."""
    if not isinstance(key, str) or not key:
        raise LeaseConfigError(f"{name} must be a non-empty string, got {key!r}")
    return key


def check_callable(value: object, *, name: str) -> None:
    """Raise `LeaseConfigError` unless `value` is callable."""
    if not callable(value):
        raise LeaseConfigError(f"{name} must be callable, got {value!r}")


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
