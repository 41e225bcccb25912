"""A wall clock that can be skewed: :class:`SkewedClock`."""

from __future__ import annotations

import time

__all__ = ["SkewedClock"]


class SkewedClock:
    """A wall clock (epoch seconds) running ``offset`` seconds ahead of this machine's.

    Pass it as ``LeaseManager(..., wall_clock=SkewedClock(offset))`` to make one manager
    believe it is another time than its peers, and move it with :meth:`jump` or by
    setting :attr:`offset`. A negative offset puts the clock behind. Only the wall clock
    is skewed: a manager's deadlines run on the monotonic clock, as in production.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset

    def jump(self, seconds: float) -> None:
        """Move the clock by ``seconds`` (negative to go back)."""
        self.offset += seconds

    def __repr__(self) -> str:
        return f"SkewedClock(offset={self.offset!r})"
