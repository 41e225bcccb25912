"""The host's suspend-aware clock, for a holder's validity across a suspend.

`CLOCK_MONOTONIC`, which the event loop and every local deadline use, stands still on
Linux while the host or VM is suspended, although the other hosts' clocks, and with them
the contenders' takeover rules, run on. A clock that counts suspended time tells the
holder how long it slept, so that its lease ends when it would have without the suspend.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import anyio

__all__ = ["Clocks", "suspend_aware_clock"]


def suspend_aware_clock() -> float:
    """Seconds on a monotonic clock that keeps counting while the host is suspended.

    Linux: `CLOCK_BOOTTIME`. macOS: `CLOCK_MONOTONIC`, which there counts sleep. Elsewhere
    the best available, `time.monotonic()` (on Windows it counts sleep too).
    """
    return time.clock_gettime(_CLOCK) if _CLOCK is not None else time.monotonic()


_CLOCK: int | None
if sys.platform.startswith("linux"):
    _CLOCK = time.CLOCK_BOOTTIME
elif sys.platform == "darwin":
    _CLOCK = time.CLOCK_MONOTONIC
else:
    _CLOCK = None


class Clocks:
    """The clocks a manager reads, each injectable so that a simulation can drive them.

    - `wall`: epoch seconds, written into records and read by the wall-clock rule.
    - `suspend_aware`: a monotonic clock that counts time the host was suspended.

    The monotonic clock is the event loop's (`anyio.current_time`), on which every local
    deadline, sleep and timeout runs: a loop with a virtual clock makes it virtual.
    """

    __slots__ = ("suspend_aware", "wall")

    def __init__(self, *, wall: Callable[[], float], suspend_aware: Callable[[], float]) -> None:
        self.wall = wall
        self.suspend_aware = suspend_aware

    def suspended(self) -> float:
        """How long the host has been suspended so far, give or take a constant.

        The suspend-aware clock runs on while the host sleeps; the loop's monotonic clock
        does not, so their difference grows by the time spent suspended.
        """
        return self.suspend_aware() - anyio.current_time()
