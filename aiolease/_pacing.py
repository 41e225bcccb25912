"""The waiting policy: how long every retry, poll and first heartbeat waits.

One object per manager, drawing all of its jitter from one `random.Random`: seeded, a
run is repeatable (the simulator relies on it); unseeded, hosts that start together
drift apart. A reader looking for "how long does aiolease wait" finds all of it here.
"""

from __future__ import annotations

import math
import random
from typing import Final

__all__ = ["Pacing"]

_FIRST_BACKOFF: Final = 0.05  # the ceiling of the first retry after a failure
_POLL_JITTER: Final = (0.8, 1.0)  # a waiter polls after this share of poll_interval
_MIN_POLL: Final = 0.001  # never busy-loop, even when a lease may be taken over now
_MIN_ALLOWANCE: Final = 1.0  # the least time a final acquire attempt gets to be answered
# A lease's first heartbeat comes after this share of the interval, drawn at random, so
# that leases granted together do not refresh together for as long as they are held.
_FIRST_HEARTBEAT_SPREAD: Final = (0.75, 1.0)


class Pacing:
    """Backoff after failures, jittered polling of a held key, and request allowances."""

    __slots__ = ("_random", "backoff_ceiling", "poll_interval")

    def __init__(self, *, poll_interval: float, backoff: float, rng: random.Random) -> None:
        self.poll_interval = poll_interval
        self.backoff_ceiling = backoff
        self._random = rng

    def backoff(self, failures: int) -> float:
        """The pause before retrying after `failures` failures in a row (0 for the first).

        Exponential from 50 ms up to the manager's `backoff`, with "equal jitter": between
        half the ceiling and the ceiling, so that retries never bunch up at zero.
        """
        ceiling = min(self.backoff_ceiling, _FIRST_BACKOFF * 2.0 ** min(failures, 30))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    def poll(self, retry_after: float) -> float:
        """The pause before polling a held key again: a jittered poll interval.

        Never later than the moment the lease may be taken over (`retry_after`).
        """
        jittered = self.poll_interval * self._random.uniform(*_POLL_JITTER)
        return max(_MIN_POLL, min(retry_after, jittered))

    def first_heartbeat(self, interval: float) -> float:
        """When a lease's first heartbeat comes, after its grant: spread over the interval."""
        return interval * self._random.uniform(*_FIRST_HEARTBEAT_SPREAD)

    @staticmethod
    def allowance(limit: float | None, remaining: float) -> float:
        """How long one acquire request may take: the time left, but never too little.

        A final attempt made at the timeout still gets a second to complete; a single try
        (timeout 0) or an unbounded wait leaves the client's own timeouts in charge.
        """
        if limit is None or limit == 0:
            return math.inf
        return max(remaining, _MIN_ALLOWANCE)
