"""The holder stops first (design.md §3): a lease's timing, and the one deadline formula.

A holder's validity counts on its monotonic clock from the send time of the write in
force, less the safety margin. Where the outcome of a send is unknown, a contender may
have started timing the version it writes from that very send, so validity counts from
the earliest such send (`Unanswered`). Nothing here awaits or reads a clock: callers give
the times, which keeps the rules the same under a real and a simulated loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._durations import TTL, Duration, default_safety_margin, least_safety_margin, seconds
from ._exceptions import LeaseConfigError

__all__ = ["Timing", "Unanswered", "deadline"]


def deadline(sent_at: float, ttl: float, safety_margin: float) -> float:
    """When a holder must stop: the deadline formula, written once.

    `sent_at` is the send time of the write in force (monotonic clock). Every contender
    takes over at least `ttl` after that send by either takeover rule, so stopping
    `safety_margin` earlier leaves room for clock drift and the holder's own lag.
    """
    return sent_at + ttl - safety_margin


@dataclass(frozen=True, slots=True)
class Timing:
    """A lease's ttl, heartbeat interval and safety margin, checked to fit together."""

    ttl: float
    heartbeat_interval: float
    safety_margin: float

    @classmethod
    def of(
        cls,
        ttl: Duration | None,
        *,
        default_ttl: float,
        heartbeat_interval: float | None,
        safety_margin: float | None,
    ) -> Timing:
        """The timing of a lease of `ttl` (None: `default_ttl`) under a manager's options.

        Refuses, with `LeaseConfigError`, a margin below ttl/1000 + 1 ms, a heartbeat
        interval of half the ttl or more, and a margin plus interval of the ttl or more.
        """
        lease_ttl = default_ttl if ttl is None else seconds(ttl, name="ttl", bounds=TTL)
        heartbeat = heartbeat_interval or lease_ttl / 3
        least_margin = least_safety_margin(lease_ttl)
        margin = default_safety_margin(lease_ttl) if safety_margin is None else safety_margin
        if margin < least_margin:
            raise LeaseConfigError(
                f"safety_margin ({margin} s) must be at least ttl/1000 + 1 ms "
                f"({least_margin:.6g} s for a ttl of {lease_ttl} s): the version rule relies on "
                "it to cover a drift of up to 0.1 % between two hosts' monotonic clocks"
            )
        if heartbeat >= lease_ttl / 2:
            raise LeaseConfigError(
                f"heartbeat_interval ({heartbeat} s) must be below half the ttl ({lease_ttl} s) "
                "so that a failed refresh can be retried; lower heartbeat_interval or raise ttl"
            )
        if margin + heartbeat >= lease_ttl:
            raise LeaseConfigError(
                f"safety_margin ({margin} s) + heartbeat_interval ({heartbeat} s) must be below "
                f"the ttl ({lease_ttl} s); lower them or raise ttl"
            )
        return cls(lease_ttl, heartbeat, margin)

    @property
    def lasts(self) -> float:
        """How long a grant or refresh is valid for its holder after its send."""
        return self.ttl - self.safety_margin

    def deadline(self, sent_at: float) -> float:
        """The holder's deadline for a write of this lease sent at `sent_at`."""
        return deadline(sent_at, self.ttl, self.safety_margin)


class Unanswered:
    """The earliest send, among the attempts of one write, whose outcome is unknown.

    Shared by acquire and refresh: an attempt that got no answer (a timeout, a failure in
    transit) may have been applied, and a contender may have started timing its record
    version from then. When a later attempt of the same write is answered, the holder's
    validity must count from that earliest send, not from the answered one.
    """

    __slots__ = ("sent_at", "suspended")

    def __init__(self) -> None:
        self.sent_at: float | None = None
        self.suspended = 0.0  # the host's time suspended so far, at that send

    def note(self, sent_at: float, suspended: float) -> None:
        """An attempt sent at `sent_at` got no answer; keep it if it is the first."""
        if self.sent_at is None:
            self.sent_at, self.suspended = sent_at, suspended

    def clear(self) -> None:
        """Nothing of the write is in doubt any more (it was refused, or is written anew)."""
        self.sent_at = None
        self.suspended = 0.0

    def origin(self, sent_at: float, suspended: float) -> tuple[float, float]:
        """Where validity counts from for an answer to the attempt sent at `sent_at`."""
        if self.sent_at is None:
            return sent_at, suspended
        return self.sent_at, self.suspended
