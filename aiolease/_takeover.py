"""When a contender may take over (design.md §4): the version rule, and the sooner of two.

Pure rules: the callers give the clock readings. The store judges the first rule, expiry
(DynamoDB by the hosts' wall clocks within `max_clock_skew`, a SQL store by its own
clock), and says how long until it frees a lease (`Record.takeover_in`). The version rule
trusts no clock but the waiter's monotonic one: a waiter that has seen one record
version unchanged for the record's whole duration, timed from the answer that first
showed it, may take the key on a condition on that version.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._durations import MAX_TTL
from .store import Record

__all__ = ["VersionWatch", "retry_after"]


@dataclass(slots=True)
class _Seen:
    """One record version as first seen, timed on the waiter's monotonic clock."""

    version: str
    since: float
    duration: float


class VersionWatch:
    """A waiter's view for the version rule: which version it times, and since when."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: _Seen | None = None

    def observe(self, holder: Record, now: float) -> None:
        """Start timing `holder`'s version at `now`, unless it is the one already timed.

        The stored duration is timed for at most the longest ttl there is: a record with an
        absurd duration (another writer's) cannot block the key for longer.
        """
        if holder.version is None or holder.duration_ms is None:
            self._seen = None
        elif self._seen is None or self._seen.version != holder.version:
            duration = min(max(holder.duration_ms / 1000, 0.0), MAX_TTL)
            self._seen = _Seen(holder.version, now, duration)

    def unchanged(self, now: float) -> str | None:
        """The version that has stood unchanged for its whole duration at `now`, if any."""
        seen = self._seen
        if seen is not None and now - seen.since >= seen.duration:
            return seen.version
        return None

    def wait(self, now: float) -> float | None:
        """Seconds until the timed version may be taken over; None when none is timed."""
        if self._seen is None:
            return None
        return self._seen.since + self._seen.duration - now


def retry_after(
    holder: Record, watch: VersionWatch, *, now: float, read_at: float, default: float
) -> float:
    """Seconds from `now` until a contender may take `holder`'s lease over, by either rule.

    `read_at` is when the store judged `holder` (monotonic clock, like `now`).
    """
    waits = []
    if holder.takeover_in is not None:
        waits.append(holder.takeover_in - (now - read_at))
    by_version = watch.wait(now)
    if by_version is not None:
        waits.append(by_version)
    return max(0.0, min(waits, default=default))
