"""Validation of the durations users pass in, and the bounds each must stay within.

Every duration has a lower and an upper bound, checked before any request: an absurd value
(a ttl of `timedelta.max`, `10**400` seconds, a tenth of a millisecond) is refused with a
`LeaseConfigError` that names the bound and says why it exists, instead of being stored
where it could lock a key for millennia or make every reader fail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from ._exceptions import LeaseConfigError

__all__ = [
    "ACQUIRE_TIMEOUT",
    "BACKOFF",
    "HEARTBEAT_INTERVAL",
    "MAX_CLOCK_SKEW",
    "MAX_TTL",
    "POLL_INTERVAL",
    "RELEASE_TIMEOUT",
    "SAFETY_MARGIN",
    "TTL",
    "TTL_BUFFER",
    "Bounds",
    "Duration",
    "default_safety_margin",
    "least_safety_margin",
    "optional_seconds",
    "seconds",
]

Duration = float | int | timedelta

_MINUTE: Final = 60.0
_HOUR: Final = 3600.0
_DAY: Final = 86_400.0
_YEAR: Final = 365 * _DAY
_HUGE: Final = 1e300


@dataclass(frozen=True, slots=True)
class Bounds:
    """The closed range `[low, high]` a duration must lie in, and why each end is there."""

    low: float
    high: float
    why_low: str
    why_high: str = ""

    def why(self, *, low: bool) -> str:
        return self.why_low if low or not self.why_high else self.why_high


#: A lease's ttl. Below 100 ms a lease cannot be granted and renewed over a network with
#: time to spare; above a year its expiry stops being an ordinary date, and a record
#: timed by the version rule could block a key for longer than any lease is meant to last.
TTL: Final = Bounds(
    0.1,
    _YEAR,
    "a shorter lease cannot be granted and renewed over a network with time to spare",
    "a longer one is taken for a mistake, and the version rule times a record for at most a year",
)
MAX_TTL: Final = TTL.high
#: As a duration; the manager also requires at least ttl/1000 + 1 ms of each lease's ttl.
SAFETY_MARGIN: Final = Bounds(0.0, _YEAR, "", "it must be shorter than the lease")
HEARTBEAT_INTERVAL: Final = Bounds(
    0.01,
    _YEAR,
    "a shorter interval only floods the store with refreshes",
    "it must be shorter than the lease",
)
MAX_CLOCK_SKEW: Final = Bounds(
    0.0, _DAY, "", "hosts whose clocks differ by more than a day need their clocks fixed first"
)
POLL_INTERVAL: Final = Bounds(
    0.001,
    _HOUR,
    "polling more often only floods the store",
    "a waiter must poll often enough to notice a release",
)
BACKOFF: Final = Bounds(
    0.001,
    _HOUR,
    "retrying sooner only floods a struggling store",
    "a retry must come soon enough to be of use",
)
RELEASE_TIMEOUT: Final = Bounds(
    0.01, _HOUR, "a release must have time for one request", "a release must not hang its caller"
)
TTL_BUFFER: Final = Bounds(
    _MINUTE,
    _YEAR,
    "DynamoDB deletes expired items by its own clock, so a shorter buffer could delete a "
    "live lease of a host whose clock runs behind",
    "expired items would linger for more than a year",
)
ACQUIRE_TIMEOUT: Final = Bounds(0.0, _YEAR, "", "use timeout=None to wait without a limit")


def least_safety_margin(ttl: float) -> float:
    """The smallest safety margin a lease of `ttl` may have: ttl/1000 + 1 ms.

    The version rule relies on it to cover a drift of up to 0.1 % between the rates of two
    hosts' monotonic clocks, plus the granularity of the clocks themselves.
    """
    return ttl / 1000 + 0.001


def default_safety_margin(ttl: float) -> float:
    """The margin of a lease of `ttl` when none is given: ttl/5 capped at 5 s, or the least."""
    return max(min(ttl / 5, 5.0), least_safety_margin(ttl))


def seconds(value: object, *, name: str, bounds: Bounds) -> float:
    """Return `value` as float seconds within `bounds`, or raise `LeaseConfigError`."""
    if isinstance(value, timedelta):
        result = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise LeaseConfigError(f"{name} must be finite, got {value!r}")
        # An int too large for a float is out of bounds, not an OverflowError.
        result = float(max(-_HUGE, min(value, _HUGE)))
    else:
        raise LeaseConfigError(
            f"{name} must be a number of seconds or a datetime.timedelta, "
            f"got {type(value).__name__} {value!r}"
        )
    if result < 0 or (result == 0 and bounds.low > 0):
        sign = ">= 0" if bounds.low == 0 else "> 0"
        raise LeaseConfigError(f"{name} must be {sign} seconds, got {_shown(value)}")
    if result < bounds.low:
        raise LeaseConfigError(
            f"{name} must be at least {_human(bounds.low)} ({bounds.why(low=True)}), "
            f"got {_shown(value)}"
        )
    if result > bounds.high:
        raise LeaseConfigError(
            f"{name} must be at most {_human(bounds.high)} ({bounds.why(low=False)}), "
            f"got {_shown(value)}"
        )
    return result


def optional_seconds(value: object, *, name: str, bounds: Bounds) -> float | None:
    """Like `seconds`, but `None` passes through (meaning "use the default" or "no limit")."""
    if value is None:
        return None
    return seconds(value, name=name, bounds=bounds)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."  # noqa: PLR2004


def _human(value: float) -> str:
    """`0.1` as "100 ms", `86400` as "1 day", `31536000` as "365 days"."""
    if value == 0:
        return "0 s"
    for unit, size in (("days", _DAY), ("hour", _HOUR), ("s", 1.0)):
        if value >= size and (value / size).is_integer():
            count = int(value / size)
            if unit == "days" and count == 1:
                return "1 day"
            if unit == "hour" and count != 1:
                return f"{count} hours"
            return f"{count} {unit}"
    return f"{value * 1000:g} ms"
