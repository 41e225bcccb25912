"""The host's suspend-aware clock, for a holder's validity across a suspend.

`CLOCK_MONOTONIC`, which the event loop and every local deadline use, stands still on
Linux while the host or VM is suspended, although the other hosts' clocks, and with them
the contenders' takeover rules, run on. A clock that counts suspended time tells the
holder how long it slept, so that its lease ends when it would have without the suspend.
"""

from __future__ import annotations

import sys
import time

__all__ = ["suspend_aware_clock"]


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
