"""What a manager tells its hooks: one `LeaseEvent` per thing that happened to a lease."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["EventKind", "LeaseEvent"]

EventKind = Literal[
    "acquired", "contended", "waited", "refreshed", "refresh_failed", "lost", "released"
]


@dataclass(frozen=True, slots=True)
class LeaseEvent:
    """Something that happened to a lease of this manager, handed to its `hooks`.

    - ``acquired``: a grant; `fence`, and `duration` from the acquire call to the grant.
    - ``contended``: an attempt found the key held; `holder` and `retry_after`.
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
