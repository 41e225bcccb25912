"""`MemoryStore`: the lease store in plain Python, for fast tests and for simulation.

Linearizable by construction: every operation applies atomically, at one point, to a
dict in this process. It keeps the conditions and outcomes of the DynamoDB store
(`semantics="dynamodb"`: expiry judged by the manager's wall clock within
`max_clock_skew`, fences seeded from that clock) or of a SQL store
(`semantics="server-clock"`: expiry judged by the store's own `clock`, fences from a
sequence that never goes back). Each operation passes through `intercept`, where a test
or a scheduler decides its fate: apply it now, later, twice, or apply it and lose the
answer.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, TypeVar

import anyio.lowlevel

from aiolease._exceptions import LeaseConfigError
from aiolease.store import (
    REVOKED_KEPT,
    Capability,
    DataUpdate,
    Now,
    Outcome,
    Page,
    Record,
    _Restore,
    _Unset,
    duration_ms,
)

__all__ = ["Interceptor", "MemoryStore", "Operation", "Semantics"]

T = TypeVar("T")
Semantics = Literal["dynamodb", "server-clock"]
OperationName = Literal[
    "acquire", "refresh", "release", "break_lease", "revoke", "get", "list_page"
]

_PAGE_SIZE: Final = 100


class Operation(Generic[T]):
    """One store operation, held where an interceptor decides what becomes of it.

    `apply()` applies it to the store at once, atomically, and returns its answer; it may
    be called more than once (a re-send: a write whose condition then fails is refused,
    as on DynamoDB) or not at all (the request never arrived).
    """

    __slots__ = ("_apply", "applied", "key", "name", "now")

    def __init__(self, name: OperationName, key: str, now: Now, apply: Callable[[], T]) -> None:
        self.name: OperationName = name
        self.key = key  # the lease key (for a listing: the prefix)
        self.now = now  # the wall-clock reading the manager sent with it
        self.applied = 0  # how many times it has been applied so far
        self._apply = apply

    def __repr__(self) -> str:
        return f"<Operation {self.name} {self.key!r} applied={self.applied}>"

    def apply(self) -> T:
        """Apply the operation to the store now and return what the store answers."""
        self.applied += 1
        return self._apply()


#: ``async def intercept(operation) -> answer``: apply the operation (or not) and return
#: the answer the caller gets, or raise the error it gets (a `LeaseStoreError`).
Interceptor = Callable[[Operation[Any]], Awaitable[Any]]


@dataclass(slots=True)
class _Item:
    """One stored lease item; None stands for an absent attribute."""

    key: str
    owner: str | None = None
    token: str | None = None
    version: str | None = None
    fence: int | None = None
    expires_at_ms: int | None = None
    duration_ms: int | None = None
    data: str | None = None
    data_before: str | None = None
    released: str | None = None
    released_before: str | None = None
    revoked: tuple[str, ...] = ()
    sequence: int | None = None


class MemoryStore:
    """A lease store held in this process: linearizable, fast, and hookable.

    Use it as ``LeaseManager(MemoryStore(), ...)`` for tests that need no DynamoDB, or
    to drive the manager deterministically. Options:

    - `semantics`: ``"dynamodb"`` (the default) or ``"server-clock"`` (see the module).
    - `clock`: the store's own clock in epoch seconds, read in ``"server-clock"`` mode.
    - `intercept`: called with every `Operation`; it must apply it (or not) and return
      the answer. By default each operation is applied at once.
    - `table`: the name shown in messages and as `LeaseManager.table`.

    Every operation yields to the event loop before it applies, as a request would, so a
    cancellation that lands there means "not applied". Without `intercept`, a write is
    never applied with its answer lost: pass an interceptor to test that.
    """

    capabilities: frozenset[Capability] = frozenset()

    def __init__(
        self,
        *,
        semantics: Semantics = "dynamodb",
        clock: Callable[[], float] = time.time,
        intercept: Interceptor | None = None,
        table: str = "memory",
    ) -> None:
        if semantics not in {"dynamodb", "server-clock"}:
            raise LeaseConfigError(
                f"semantics must be 'dynamodb' or 'server-clock', got {semantics!r}"
            )
        if not callable(clock):
            raise LeaseConfigError(f"clock must be callable, got {clock!r}")
        if intercept is not None and not callable(intercept):
            raise LeaseConfigError(f"intercept must be an async callable, got {intercept!r}")
        if not isinstance(table, str) or not table:
            raise LeaseConfigError(f"table must be a non-empty string, got {table!r}")
        self.semantics: Semantics = semantics
        self.table = table
        self.location = f"MemoryStore {table!r}"
        self._clock = clock
        self._intercept = intercept
        self._items: dict[str, _Item] = {}
        self._fences = itertools.count(1)  # the server-clock mode's sequence
        self.operations = 0  # operations sent to it so far

    def __repr__(self) -> str:
        return f"<MemoryStore {self.semantics} table={self.table!r} items={len(self._items)}>"

    # -- for tests and simulations -----------------------------------------------------

    def delete(self, key: str) -> bool:
        """Delete the item of `key`, as DynamoDB TTL or an operator would; True if it existed."""
        return self._items.pop(key, None) is not None

    def keys(self) -> Iterator[str]:
        """The keys that have an item, in the order they were created."""
        return iter(list(self._items))

    def peek(self, key: str, *, now: Now | None = None) -> Record | None:
        """The record of `key` as stored, without an operation (nothing intercepts it).

        `held` and `takeover_in` are judged as of `now` (default: ``time.time()`` with no
        clock skew allowed).
        """
        item = self._items.get(key)
        return None if item is None else self._record(item, now or Now(time.time(), 0.0))

    # -- the store seam --------------------------------------------------------------

    def check_options(self, *, max_clock_skew: float) -> None:
        """Any manager options will do."""

    async def check_table(self) -> None:
        """The table always exists and fits."""

    async def create_table(self) -> bool:
        """Nothing to create: the table exists from the start (False)."""
        return False

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
        """Take the lease if free, expired, or unchanged since `seen_version`."""

        def apply() -> Outcome:
            item = self._items.get(key)
            old = None if item is None else self._record(item, now)
            if item is not None and not self._grantable(item, token, seen_version, now):
                return Outcome(applied=False, record=old)
            if item is None:
                item = self._items[key] = _Item(key)
            fence = (
                next(self._fences)
                if self.semantics == "server-clock"
                else (now.fence_seed() if item.fence is None else item.fence) + 1
            )
            found = item.data
            if isinstance(data, _Restore):
                item.data = item.data_before  # as DynamoDB evaluates both on the old item
            item.data_before = None if isinstance(data, _Unset) else found
            item.released_before = item.released
            item.owner, item.token, item.version, item.sequence = owner, token, version, 1
            item.fence = fence
            self._set_expiry(item, ttl, now)
            _write_data(item, data)
            return Outcome(applied=True, record=self._record(item, now))

        return await self._run(Operation("acquire", key, now, apply))

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
        """Extend the lease held with `token`, unless a later write of ours applied."""

        def apply() -> Outcome:
            item = self._items.get(key)
            if (
                item is None
                or item.token != token
                or item.sequence is None
                or item.sequence > sequence
            ):
                return Outcome(applied=False, record=self._maybe_record(item, now))
            item.sequence, item.version = sequence, version
            self._set_expiry(item, ttl, now)
            item.data_before = None  # the grant was handed out: no undo will need it
            _write_data(item, data)
            return Outcome(applied=True, record=self._record(item, now))

        return await self._run(Operation("refresh", key, now, apply))

    async def release(self, key: str, *, token: str, data: DataUpdate, now: Now) -> Outcome:
        """Clear the holder if it is still `token`, leaving `token` as the release marker."""

        def apply() -> Outcome:
            item = self._items.get(key)
            if item is None or item.token != token:
                return Outcome(applied=False, record=self._maybe_record(item, now))
            if isinstance(data, _Restore):
                item.data = item.data_before
            else:
                _write_data(item, data)
            item.released, item.token, item.data_before = token, None, None
            return Outcome(applied=True, record=self._record(item, now))

        return await self._run(Operation("release", key, now, apply))

    async def break_lease(
        self, key: str, *, token: str, fence: int | None, marker: str, now: Now
    ) -> Outcome:
        """Clear the grant of `token` with `fence`, leaving `marker`; applied, the old record."""

        def apply() -> Outcome:
            item = self._items.get(key)
            old = self._maybe_record(item, now)
            if item is None or item.token != token or item.fence != fence:
                return Outcome(applied=False, record=old)
            item.released, item.token = marker, None
            return Outcome(applied=True, record=old)

        return await self._run(Operation("break_lease", key, now, apply))

    async def revoke(self, key: str, *, token: str, previous: tuple[str, ...], now: Now) -> Outcome:
        """Put `token` first among the revoked tokens, if they still start as `previous`."""

        def apply() -> Outcome:
            item = self._items.get(key)
            current = () if item is None else item.revoked
            first = current[0] if current else None
            if first != (previous[0] if previous else None):
                return Outcome(applied=False, record=self._maybe_record(item, now))
            if item is None:
                item = self._items[key] = _Item(key)  # as an UpdateItem creates it
            item.revoked = (token, *previous)[:REVOKED_KEPT]
            return Outcome(applied=True, record=self._record(item, now))

        return await self._run(Operation("revoke", key, now, apply))

    async def get(self, key: str, *, now: Now) -> Record | None:
        """The record of `key`, or None."""

        def apply() -> Record | None:
            return self._maybe_record(self._items.get(key), now)

        return await self._run(Operation("get", key, now, apply))

    async def list_page(self, prefix: str, *, cursor: Any, now: Now) -> Page:
        """Up to 100 records with a holder whose key starts with `prefix`, in key order."""

        def apply() -> Page:
            keys = sorted(
                k
                for k, item in self._items.items()
                if k.startswith(prefix)
                and item.token is not None
                and (cursor is None or k > cursor)
            )
            page = keys[:_PAGE_SIZE]
            records = [self._record(self._items[k], now) for k in page]
            return Page(records, page[-1] if len(keys) > _PAGE_SIZE else None)

        return await self._run(Operation("list_page", prefix, now, apply))

    # -- the rules -----------------------------------------------------------------------

    def _grantable(self, item: _Item, token: str, seen: str | None, now: Now) -> bool:
        if token in {item.released, item.released_before} or token in item.revoked:
            return False  # a late write of a lease we released or undid must not land
        if item.token is None:
            return True
        if item.token == token:
            return False  # ours already: a re-send, refused so that it never applies twice
        expired = item.expires_at_ms is not None and item.expires_at_ms < self._stale_ms(now)
        return expired or (seen is not None and item.version == seen)

    def _judge(self, now: Now) -> Now:
        """The reading expiry is judged by: the manager's, or the store's own clock."""
        return Now(self._clock(), 0.0) if self.semantics == "server-clock" else now

    def _stale_ms(self, now: Now) -> int:
        """An expiry before this (epoch ms) may be taken over."""
        return self._judge(now).stale_before_ms()

    def _set_expiry(self, item: _Item, ttl: float, now: Now) -> None:
        item.expires_at_ms = self._judge(now).expires_at_ms(ttl)
        item.duration_ms = duration_ms(ttl)

    def _takeover_in(self, item: _Item, now: Now) -> float | None:
        if item.token is None or item.expires_at_ms is None:
            return None
        return self._judge(now).takeover_in(item.expires_at_ms)

    def _record(self, item: _Item, now: Now) -> Record:
        return Record(
            key=item.key,
            owner=item.owner,
            token=item.token,
            version=item.version,
            fence=item.fence,
            expires_at_ms=item.expires_at_ms,
            duration_ms=item.duration_ms,
            data=item.data,
            released=item.released,
            released_before=item.released_before,
            revoked=item.revoked,
            sequence=item.sequence,
            takeover_in=self._takeover_in(item, now),
        )

    def _maybe_record(self, item: _Item | None, now: Now) -> Record | None:
        return None if item is None else self._record(item, now)

    async def _run(self, operation: Operation[T]) -> T:
        await anyio.lowlevel.checkpoint()  # as a request would: a cancellation lands here
        self.operations += 1
        if self._intercept is None:
            return operation.apply()
        answer: T = await self._intercept(operation)
        return answer


def _write_data(item: _Item, data: DataUpdate) -> None:
    if isinstance(data, str):
        item.data = data
    elif data is None:
        item.data = None
