"""The exceptions aiolease raises, all rooted at `LeaseError`.

```
LeaseError
├── LeaseHeldError           someone else holds the key (.key, .owner, .expires_at, .retry_after)
│   └── LeaseTimeoutError    ...and kept holding it until the timeout (also a TimeoutError)
├── LeaseLostError           a lease we held is gone (.key, .fence, .reason)
├── LeaseConfigError         a bad argument or table schema (also a ValueError)
└── LeaseStoreError          DynamoDB failed or could not be reached (cause in __cause__)
    └── TableNotFoundError   the table does not exist (.table)
```

Every exception takes one message and carries its context as attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "LeaseConfigError",
    "LeaseError",
    "LeaseHeldError",
    "LeaseLostError",
    "LeaseStoreError",
    "LeaseTimeoutError",
    "LostReason",
    "TableNotFoundError",
]

LostReason = Literal["expired", "taken", "released", "deleted"]


class LeaseError(Exception):
    """Base class of every exception raised by aiolease."""


class LeaseHeldError(LeaseError):
    """The key is held by another owner.

    `retry_after` is how many seconds (>= 0) this contender must wait before it may take
    the key over, clock-skew bound included; `owner` and `expires_at` are the holder's as
    stored (either may be None when the holder's record was unreadable).
    """

    def __init__(
        self,
        message: str,
        *,
        key: str,
        owner: str | None,
        expires_at: datetime | None,
        retry_after: float,
    ) -> None:
        super().__init__(message)
        self.key = key
        self.owner = owner
        self.expires_at = expires_at
        self.retry_after = retry_after


class LeaseTimeoutError(LeaseHeldError, TimeoutError):
    """The key stayed held by another owner until the acquire's timeout ran out."""

    def __init__(
        self,
        message: str,
        *,
        key: str,
        owner: str | None,
        expires_at: datetime | None,
        retry_after: float,
    ) -> None:
        # TimeoutError is an OSError: pass exactly one argument so str() stays the message.
        super().__init__(
            message, key=key, owner=owner, expires_at=expires_at, retry_after=retry_after
        )


class LeaseLostError(LeaseError):
    """A lease is no longer held.

    `reason` says why: ``"expired"`` (its local deadline passed without a successful
    refresh), ``"taken"`` (another owner holds the key now), ``"released"`` (the record shows
    no holder: released elsewhere or broken by an operator) or ``"deleted"`` (the item is gone).
    """

    def __init__(self, message: str, *, key: str, fence: int, reason: LostReason) -> None:
        super().__init__(message)
        self.key = key
        self.fence = fence
        self.reason: LostReason = reason


class LeaseConfigError(LeaseError, ValueError):
    """An argument, option or table schema is not usable; nothing was sent."""


class LeaseStoreError(LeaseError):
    """DynamoDB refused or failed a request; the original error is `__cause__`.

    `operation` names the DynamoDB operation (for example ``"UpdateItem"``); `transient`
    tells whether retrying can heal the failure (throttling, 5xx, timeouts, connection
    errors); `maybe_applied` whether DynamoDB may have applied the write all the same.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        transient: bool = False,
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.transient = transient
        self.maybe_applied = maybe_applied


class TableNotFoundError(LeaseStoreError):
    """The lease table does not exist; create it with `LeaseManager.create_table()`."""

    def __init__(self, message: str, *, table: str, operation: str) -> None:
        super().__init__(message, operation=operation)
        self.table = table
