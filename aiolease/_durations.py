"""Validation of the durations and numbers users pass in."""

from __future__ import annotations

import math
from datetime import timedelta

from ._exceptions import LeaseConfigError

__all__ = ["Duration", "optional_seconds", "seconds"]

Duration = float | int | timedelta


def seconds(value: object, *, name: str, allow_zero: bool = False) -> float:
    """Return `value` as float seconds, or raise `LeaseConfigError` naming `name`."""
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
    """Like `seconds`, but `None` passes through (meaning "use the default" or "no limit")."""
    if value is None:
        return None
    return seconds(value, name=name, allow_zero=allow_zero)
