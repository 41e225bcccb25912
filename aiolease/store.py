"""The store seam: what a lease store does for a `LeaseManager`, and what it hands back.

A store keeps one record per lease key and applies the manager's writes atomically,
each conditioned on the holder's token. It decides when a lease has expired (by the
manager's wall clock within `max_clock_skew`, or by its own clock), where fences come
from, and how its errors are classified; the manager keeps everything about time on its
own side: local deadlines, retries, heartbeats, the version rule and the undo.

Stores that ship with aiolease: `aiolease.dynamodb.DynamoDBStore` and
`aiolease.testing.MemoryStore`. A store of your own implements `Store` and runs the
contract in `aiolease.testing.conformance`.

Every operation sends at most one request, and raises `aiolease.LeaseStoreError` for a
failure, saying whether retrying can heal it (`transient`) and whether the write may have
been applied (`maybe_applied`). A write that finds its condition false is not an error:
it returns an `Outcome` that is not `applied`, with the record as the store found it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, runtime_checkable

__all__ = [
    "OPERATIONS",
    "RESTORE",
    "REVOKED_KEPT",
    "UNSET",
    "Capability",
    "DataUpdate",
    "Now",
    "Outcome",
    "Page",
    "Record",
    "Store",
    "duration_ms",
]


@dataclass(frozen=True, slots=True)
class Now:
    """The manager's wall-clock reading (epoch seconds) and its bound on clock skew.

    Given with every call. A store that judges expiry by the hosts' clocks writes expiries
    from `wall` and frees a lease `max_clock_skew` after its expiry: the wall-clock rule
    of design.md §4, written once in the methods below. A store that judges by its own
    clock ignores both (or applies the same methods to a reading of its own clock, with
    no skew).
    """

    wall: float
    max_clock_skew: float

    def expires_at_ms(self, ttl: float) -> int:
        """The expiry of a lease of `ttl` written now, in epoch milliseconds."""
        return math.ceil((self.wall + ttl) * 1000)

    def stale_before_ms(self) -> int:
        """A lease whose expiry is before this (epoch ms) may be taken over now."""
        return math.floor((self.wall - self.max_clock_skew) * 1000)

    def takeover_in(self, expires_at_ms: int) -> float:
        """Seconds from now until a lease expiring at `expires_at_ms` may be taken over."""
        return expires_at_ms / 1000 + self.max_clock_skew - self.wall

    def fence_seed(self) -> int:
        """Where a fence starts when a key has none: the wall clock in microseconds."""
        return math.floor(self.wall * 1_000_000)


def duration_ms(ttl: float) -> int:
    """A lease's ttl as stored for the version rule, in milliseconds."""
    return math.ceil(ttl * 1000)


#: How many undone acquire tokens a record keeps in `Record.revoked`, newest first.
REVOKED_KEPT: Final = 16


@dataclass(frozen=True, slots=True)
class Record:
    """A lease record as the store holds it.

    `token` is None when nobody holds the lease; `version` changes with every grant and
    refresh; `expires_at_ms` is the expiry the store wrote (epoch milliseconds, by the
    clock that judges it) and `duration_ms` the lease's ttl, for the version rule.
    `released` and `released_before` are the release markers of the last two releases,
    `revoked` the tokens of undone acquires (newest first), `sequence` the order of the
    holder's writes. `takeover_in` is the store's own judgement, as of the request that
    read it (for the wall-clock rule: as of the `Now` sent with it): seconds until a
    contender may take the lease over by the store's expiry rule (negative once it may),
    or None when the record shows no holder or no expiry.
    """

    key: str
    owner: str | None
    token: str | None
    version: str | None
    fence: int | None
    expires_at_ms: int | None
    duration_ms: int | None
    data: str | None
    released: str | None
    released_before: str | None = None
    revoked: tuple[str, ...] = ()
    sequence: int | None = None
    takeover_in: float | None = None

    @property
    def held(self) -> bool:
        """Whether the record shows a holder that the store's expiry rule does not free yet."""
        return self.token is not None and self.takeover_in is not None and self.takeover_in >= 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to a conditional write: applied, or refused with the record as it stood.

    After a grant or refresh `record` is the record written; after a refusal it is the
    record that refused it, or None when there is none (or the store could not return it,
    as some DynamoDB emulators cannot). `resent` says the request was sent more than once
    (an SDK's own retry): an earlier send may have applied, or may still be in the network.
    """

    applied: bool
    record: Record | None
    resent: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing: the records, and where the next page starts (None: done)."""

    records: list[Record]
    cursor: Any = None


class _Unset:
    """Marker for "leave the stored data unchanged"."""

    def __repr__(self) -> str:
        return "UNSET"


class _Restore:
    """Marker for "put back the data the grant found" (an acquire's undo)."""

    def __repr__(self) -> str:
        return "RESTORE"


#: Leave the stored data as it is.
UNSET: Final = _Unset()
#: Put back the data the current grant found (the undo of an acquire that wrote data).
RESTORE: Final = _Restore()
#: JSON text to store, None to remove, `UNSET` to keep, `RESTORE` to undo an acquire's data.
DataUpdate = str | None | _Unset | _Restore

#: Optional capabilities a store may declare in `Store.capabilities`; none is required.
#: ``"free_notification"``: the store can tell waiters that a key may have become free;
#: ``"handover"``: a release that grants the key to a waiter in the same write;
#: ``"composite_keys"``: keys that are mappings of a table's key attributes;
#: ``"key_value"``: versioned key-value operations beside the leases.
Capability = Literal["free_notification", "handover", "composite_keys", "key_value"]


#: The awaitable operations of a `Store`, each one request.
OPERATIONS: Final = (
    "check_table",
    "create_table",
    "acquire",
    "refresh",
    "release",
    "break_lease",
    "revoke",
    "get",
    "list_page",
)


@runtime_checkable
class Store(Protocol):
    """What a `LeaseManager` needs of a lease store. All writes are atomic and conditional.

    Conditions shared by every store:

    - **acquire** applies if the record has no holder, or holds another token and is
      expired by the store's rule or still shows `seen_version`; and never for a token
      that is the record's `released` or `released_before` marker or among its `revoked`.
      It writes the owner, token, version, expiry, duration, `sequence` = 1, and a fence
      above every fence the key has had; with `data` it keeps the data found for the undo
      (`RESTORE`). A re-sent acquire whose earlier send applied is refused, and the
      refusal shows the sender's own token and version.
    - **refresh** applies if the record holds `token` with a sequence of at most
      `sequence`, writing the new version, expiry, duration and sequence.
    - **release** applies if the record holds `token`: it clears the holder and leaves
      `token` as the `released` marker; the fence stays (and the data, unless given).
    - **break_lease** applies if the record holds `token` with `fence` (no fence: none
      stored), clearing the holder and leaving `marker`; applied, it returns the record
      as it was before.
    - **revoke** applies if the record's revoked tokens still start with `previous[0]`
      (none: there are none), putting `token` first and keeping the newest
      `REVOKED_KEPT`.
    """

    #: The table (or namespace) holding the leases, for messages and `LeaseManager.table`.
    table: str
    #: Where the leases live, for log lines and messages (server, database and table).
    location: str
    #: Optional capabilities this store supports (see `Capability`).
    capabilities: frozenset[Capability]

    def check_options(self, *, max_clock_skew: float) -> None:
        """Refuse, with `LeaseConfigError`, manager options this store cannot honour."""

    async def check_table(self) -> None:
        """Refuse a table this store cannot use safely (`LeaseConfigError`)."""

    async def create_table(self) -> bool:
        """Create the table if missing and wait until usable; False if it existed."""

    async def acquire(
        self,
        key: str,
        *,
        owner: str,
        token: str,
        version: str,
        ttl: float,
        seen_version: str | None,
        data: DataUpdate,
        now: Now,
    ) -> Outcome:
        """Grant `key` to `token` if it is free, expired, or unchanged since `seen_version`."""

    async def refresh(
        self,
        key: str,
        *,
        token: str,
        version: str,
        ttl: float,
        sequence: int,
        data: DataUpdate,
        now: Now,
    ) -> Outcome:
        """Extend the lease `token` holds by `ttl` from now, writing `version`."""

    async def release(self, key: str, *, token: str, data: DataUpdate, now: Now) -> Outcome:
        """Clear the holder if it is `token`, leaving `token` as the release marker."""

    async def break_lease(
        self, key: str, *, token: str, fence: int | None, marker: str, now: Now
    ) -> Outcome:
        """Clear the grant of `token` with `fence`, leaving `marker` as the release marker."""

    async def revoke(self, key: str, *, token: str, previous: tuple[str, ...], now: Now) -> Outcome:
        """Add `token` to the record's revoked tokens if they still start as `previous`."""

    async def get(self, key: str, *, now: Now) -> Record | None:
        """The record for `key` (a strongly consistent read), or None if there is none."""

    async def list_page(self, prefix: str, *, cursor: Any, now: Now) -> Page:
        """One page of the records with a holder whose key starts with `prefix`."""
