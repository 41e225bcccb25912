"""What an acquire tells while it waits: store failures and a held key, never silently.

A waiting acquire may retry for a long time. Its first store failure is logged at
WARNING at once, then at most every `REPEAT` seconds while the failures go on (each
failure in between at DEBUG), and the store's recovery at INFO. A held key is logged at
INFO when the wait starts and whenever the holder changes, each other poll at DEBUG.
Every failure is also a ``store_failed`` event, carrying the error and how long the
store has been failing.
"""

from __future__ import annotations

import logging
from typing import Final

from ._engine import Engine
from ._exceptions import LeaseStoreError
from .store import Record

__all__ = ["REPEAT", "WaitReport"]

logger = logging.getLogger("aiolease")

#: Seconds between two WARNING lines about one run of store failures.
REPEAT: Final = 30.0


class WaitReport:
    """The log lines and events of one acquire's wait."""

    __slots__ = ("_holder", "_key", "_warned_at", "failing_since")

    def __init__(self, key: str) -> None:
        self._key = key
        self.failing_since: float | None = None  # start of the current run of failures
        self._warned_at = 0.0
        self._holder: tuple[str | None, str | None] | None = None  # (owner, token) told

    def store_failed(self, engine: Engine, error: LeaseStoreError, now: float) -> None:
        """A request failed or got no answer in time; the acquire will retry."""
        if self.failing_since is None:
            self.failing_since = self._warned_at = now
            level = logging.WARNING
        elif now - self._warned_at >= REPEAT:
            self._warned_at = now
            level = logging.WARNING
        else:
            level = logging.DEBUG
        failing = now - self.failing_since
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "acquiring %r on %s: %s; retrying, failing for %.1f s",
                self._key,
                engine.store.location,
                error,
                failing,
                extra={"aiolease_event": "store_failed"},
            )
        if engine.events.listening:
            engine.events.emit("store_failed", self._key, error=error, duration=failing)

    def answered(self, now: float) -> None:
        """The store answered: a run of failures, if any, is over."""
        if self.failing_since is not None:
            logger.info(
                "acquiring %r: the store answers again after %.1f s of failures",
                self._key,
                now - self.failing_since,
            )
            self.failing_since = None

    def held(self, holder: Record, wait: float) -> None:
        """The key is held by `holder`, who may be taken over in `wait` seconds."""
        who = (holder.owner, holder.token)
        level = logging.INFO if who != self._holder else logging.DEBUG
        self._holder = who
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "waiting for %r: held by %r, may be taken over in %.1f s",
                self._key,
                holder.owner,
                wait,
            )
