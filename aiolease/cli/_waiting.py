"""What ``aiolease run`` does while it waits for its lease: say why, and know when to stop.

`WaitWatch` is a manager hook. It prints, to stderr, what the wait is about: "waiting for
KEY: held by OWNER, may be taken over in N s" and "cannot reach <store> (ERROR);
retrying". On a terminal it keeps one status line up to date; elsewhere (a cron log) it
writes a line at once, again whenever the situation changes, and otherwise at most every
`PERIOD` seconds. After `outage_timeout` seconds of consecutive store failures it ends
the wait, so that a cron line whose store is gone exits instead of hanging.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Final, TextIO

from aiolease._exceptions import LeaseStoreError

if TYPE_CHECKING:
    from anyio import CancelScope

    from aiolease._events import LeaseEvent

__all__ = ["DEFAULT_OUTAGE_TIMEOUT", "PERIOD", "WaitWatch", "describe_failure"]

#: Seconds between two repeated lines about the same wait, when stderr is not a terminal.
PERIOD: Final = 10.0
#: Seconds of consecutive store failures after which ``aiolease run`` gives up (exit 69).
DEFAULT_OUTAGE_TIMEOUT: Final = 60.0


def describe_failure(error: BaseException) -> str:
    """A store failure in a few words: the service's error code, or the driver's error."""
    cause = error.__cause__
    if cause is None:
        return str(error)
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(cause).__name__


class WaitWatch:
    """A hook for the manager of ``aiolease run``: prints the wait, gives up on an outage."""

    def __init__(
        self,
        key: str,
        *,
        quiet: bool,
        outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT,
        stream: TextIO | None = None,
    ) -> None:
        self.key = key
        self.quiet = quiet
        self.outage_timeout = outage_timeout
        self.where = "the store"  # set once the store is known
        self.scope: CancelScope | None = None  # the wait, while it lasts
        self.gave_up: LeaseStoreError | None = None
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._clock = time.monotonic
        self._shown: tuple[object, ...] | None = None  # the situation last printed
        self._shown_at = -math.inf
        self._status_open = False  # a terminal status line without its newline yet

    def __call__(self, event: LeaseEvent) -> None:
        if self.scope is None:
            return  # the wait is over: the lease's own events are not the wait's
        if event.kind == "contended":
            wait = event.retry_after or 0.0
            self._show(
                ("held", event.holder),
                f"waiting for {self.key!r}: held by {event.holder!r}, "
                f"may be taken over in {math.ceil(wait)} s",
            )
        elif event.kind == "store_failed" and isinstance(event.error, LeaseStoreError):
            failing = event.duration or 0.0
            if failing >= self.outage_timeout:
                self.gave_up = event.error
                self.scope.cancel()
                return
            limit = (
                ""
                if math.isinf(self.outage_timeout)
                else f"; giving up after {self.outage_timeout:g} s"
            )
            so_far = f" for {math.floor(failing)} s" if failing >= 1 else ""
            self._show(
                ("failed",),
                f"cannot reach {self.where} ({describe_failure(event.error)}); "
                f"retrying{so_far}{limit}",
            )

    def end(self) -> None:
        """The wait is over: stop watching, and end a terminal's status line."""
        self.scope = None
        if self._status_open:
            self._stream.write("\n")
            self._stream.flush()
            self._status_open = False

    def _show(self, situation: tuple[object, ...], message: str) -> None:
        if self.quiet:
            return
        now = self._clock()
        if self._tty:
            self._stream.write(f"\r\x1b[Kaiolease: {message}")
            self._status_open = True
        elif situation != self._shown or now - self._shown_at >= PERIOD:
            self._stream.write(f"aiolease: {message}\n")
        else:
            return
        self._stream.flush()
        self._shown, self._shown_at = situation, now
