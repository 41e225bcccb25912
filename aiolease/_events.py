"""What a manager tells its hooks: one `LeaseEvent` per thing that happened to a lease."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ._exceptions import LeaseConfigError

__all__ = ["EventKind", "Events", "LeaseEvent"]

logger = logging.getLogger("aiolease")

EventKind = Literal[
    "acquired",
    "contended",
    "store_failed",
    "waited",
    "refreshed",
    "refresh_failed",
    "lost",
    "released",
]


@dataclass(frozen=True, slots=True)
class LeaseEvent:
    """Something that happened to a lease of this manager, handed to its `hooks`.

    - ``acquired``: a grant; `fence`, and `duration` from the acquire call to the grant.
    - ``contended``: an attempt found the key held; `holder` and `retry_after`.
    - ``store_failed``: an acquire's request (or its table check) failed or got no answer
      in time, and will be retried; `error`, and `duration` the store has been failing
      (since the first failure of this run, 0 for the first).
    - ``waited``: a waiting acquire ended after contention; `duration`, and `reason`
      ``"acquired"``, ``"timeout"`` or ``"failed"``.
    - ``refreshed``: a refresh succeeded; `duration` of it, retries included.
    - ``refresh_failed``: one refresh attempt failed and will be retried; `error`.
    - ``lost``: the lease was lost; `reason` as in `LeaseLostError`.
    - ``released``: a release finished; `released` (whether it was still ours) and
      `duration` the lease was held.

    `owner` is this manager's owner name; times are seconds on the monotonic clock.
    """

    kind: EventKind
    key: str
    owner: str
    fence: int | None = None
    duration: float | None = None
    holder: str | None = None
    retry_after: float | None = None
    reason: str | None = None
    error: BaseException | None = None
    released: bool | None = None


class Events:
    """The manager's hooks, each told of every `LeaseEvent`; a failing hook is logged.

    `listening` is False without hooks: the engine then builds no events at all.
    """

    __slots__ = ("_hooks", "listening", "owner")

    def __init__(self, hooks: Iterable[Callable[[LeaseEvent], object]], *, owner: str) -> None:
        self._hooks = tuple(hooks)
        if not all(callable(hook) for hook in self._hooks):
            raise LeaseConfigError(f"hooks must be callables taking a LeaseEvent, got {hooks!r}")
        self.listening = bool(self._hooks)
        self.owner = owner

    def emit(self, kind: EventKind, key: str, **details: Any) -> None:
        """Hand one event to every hook; a failing hook is logged, never raised."""
        event = LeaseEvent(kind, key, self.owner, **details)
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                logger.exception("lease event hook %r failed on %s", hook, event.kind)
