"""Validation and small helpers shared by the patterns."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final, TypeVar

import anyio

from aiolease import LeaseConfigError, LeaseManager

__all__ = [
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

Duration = float | int | timedelta

T = TypeVar("T")


def seconds(value: object, *, name: str, allow_zero: bool = False) -> float:
    """`value` as float seconds, or `LeaseConfigError` naming the argument `name`."""
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    else:
        raise LeaseConfigError(
            f"{name} must be a number of seconds or a datetime.timedelta, "
            f"got {type(value).__name__} {value!r}"
        )
    if not math.isfinite(result):
        raise LeaseConfigError(f"{name} must be finite, got {value!r}")
    if result < 0 or (result == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise LeaseConfigError(f"{name} must be {bound} seconds, got {value!r}")
    return result


def optional_seconds(value: object, *, name: str, allow_zero: bool = False) -> float | None:
    """Like `seconds`, but None passes through."""
    return None if value is None else seconds(value, name=name, allow_zero=allow_zero)


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
