"""`LeaseManager`: the policy around the store: time, waiting, retries, heartbeats."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import math
import os
import random
import re
import secrets
import socket
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, Self

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from ._clocks import suspend_aware_clock
from ._durations import (
    ACQUIRE_TIMEOUT,
    BACKOFF,
    HEARTBEAT_INTERVAL,
    MAX_CLOCK_SKEW,
    MAX_TTL,
    POLL_INTERVAL,
    RELEASE_TIMEOUT,
    SAFETY_MARGIN,
    TTL,
    TTL_BUFFER,
    Duration,
    default_safety_margin,
    least_safety_margin,
    optional_seconds,
    seconds,
)
from ._events import LeaseEvent
from ._exceptions import (
    LeaseConfigError,
    LeaseError,
    LeaseHeldError,
    LeaseLostError,
    LeaseStoreError,
    LeaseTimeoutError,
    LostReason,
    TableNotFoundError,
)
from ._lease import Lease, LeaseInfo, _State, decode_data, utc_from_ms
from ._shield import shielded
from ._store import RESTORE, UNSET, DataUpdate, DynamoDBClient, Outcome, Record, Store, _Unset

__all__ = ["LeaseManager"]

logger = logging.getLogger("aiolease")

_MAX_KEY_BYTES: Final = 2048  # DynamoDB's limit for a partition key value
# An acquire keeps the data it found beside its own until the grant is settled (for its
# undo): two copies and the lease attributes must fit DynamoDB's 400 KB item limit.
_MAX_DATA_BYTES: Final = 170_000
_TABLE_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_FIRST_BACKOFF: Final = 0.05
_EXPIRED_RELEASE_TIMEOUT: Final = 1.0
_MIN_ALLOWANCE: Final = 1.0  # the least time a final acquire attempt gets to be answered
# Heartbeats due this soon after the scheduler wakes are started with those due now: a
# refresh a few milliseconds early costs nothing, a wake-up per lease costs CPU.
_HEARTBEAT_GRAIN: Final = 0.01
# The most heartbeats the scheduler starts before letting the loop run them (and the
# application's own tasks) when many fall due at once.
_HEARTBEAT_BATCH: Final = 16
# A lease's first heartbeat comes after this share of the interval, drawn at random, so
# that leases granted together do not refresh together for as long as they are held.
_FIRST_HEARTBEAT_SPREAD: Final = (0.75, 1.0)


@dataclass(frozen=True, slots=True)
class _Timing:
    ttl: float
    heartbeat_interval: float
    safety_margin: float


@dataclass(slots=True)
class _Observation:
    """A waiter's view of one record version, timed on its own monotonic clock."""

    version: str
    since: float
    duration: float


@dataclass(slots=True)
class _Acquisition:
    """The state of one acquire() call, kept across all its polls and retries."""

    token: str
    version: str
    observed: _Observation | None = None
    holder: Record | None = None
    failure: LeaseStoreError | None = None
    failures: int = 0
    maybe_ours: bool = False  # a write of ours may be in force: undo unless handed out
    in_flight: bool = False
    # A send of ours may still arrive (unanswered, or re-sent by the SDK): undo (revoke)
    # unless handed out, even after a refusal.
    in_network: bool = False
    # Send time of the earliest attempt with this version whose outcome is unknown: a
    # waiter may have started timing the version from then, so our deadline must too.
    unknown_since: float | None = None
    unknown_suspended: float = 0.0  # the host's time suspended so far, at that send
    contended: int = 0  # attempts that found another holder

    def unknown(self, sent_at: float, suspended: float) -> None:
        """Note an attempt that may have been applied although we got no answer."""
        self.maybe_ours = True
        self.in_network = True
        if self.unknown_since is None:
            self.unknown_since, self.unknown_suspended = sent_at, suspended

    def refused(self, fresh_version: str) -> None:
        """The store refused the attempt and the item is not ours: nothing of ours is in force.

        A waiter may have been timing our version since an earlier attempt applied it
        unanswered and was since taken over: a record version is written by at most one
        grant, so the next attempt writes `fresh_version`.
        """
        self.maybe_ours = False
        self.failures = 0
        self.unknown_since = None
        self.version = fresh_version

    def restart(self, token: str, version: str) -> None:
        """Go on as a new acquire, after a grant of ours that could not be handed out was undone."""
        self.token, self.version = token, version
        self.maybe_ours = self.in_network = False
        self.unknown_since = None

    def observe(self, holder: Record, now: float) -> None:
        """Start timing `holder`'s version, unless it is the one already being timed.

        The stored duration is timed for at most the longest ttl there is: a record with
        an absurd duration (another writer's) cannot block the key for longer.
        """
        if holder.version is None or holder.duration_ms is None:
            self.observed = None
        elif self.observed is None or self.observed.version != holder.version:
            duration = min(max(holder.duration_ms / 1000, 0.0), MAX_TTL)
            self.observed = _Observation(holder.version, now, duration)


class LeaseManager:
    """Acquire, refresh and release leases on keys of one DynamoDB table.

    `client` is an aiobotocore or aioboto3 DynamoDB client, which stays yours to open and
    close; `table` names the lease table (see `create_table()`). Options:

    - `owner`: a name for this holder, shown to contenders (default host:pid:random).
    - `default_ttl`: lease duration when a call gives none (30 s).
    - `heartbeat_interval`: seconds between refreshes (default ttl/3 of each lease).
    - `safety_margin`: how long before its deadline a holder stops (default ttl/5, at
      most 5 s); at least ttl/1000 + 1 ms. Validated so that `safety_margin +
      heartbeat_interval < ttl` and `heartbeat_interval < ttl / 2`.
    - `max_clock_skew`: the bound on wall-clock disagreement between hosts (1 s); a
      contender takes an expired lease over only this long after its stored expiry.
    - `poll_interval`: how often a waiter retries a held key (1 s), and `backoff`: the
      longest pause between retries of a transient failure (1 s).
    - `release_timeout`: how long a release may take before giving up (5 s).
    - `attribute_names`: renames of item attributes by role (``key``, ``owner``, ``token``,
      ``version``, ``fence``, ``expires_at``, ``duration``, ``data``, ``data_before``,
      ``sequence``, ``released``, ``released_before``, ``revoked``, ``ttl``).
    - `sort_key`: ``(attribute, value)`` for tables with a sort key: every lease item uses
      this fixed value.
    - `ttl_buffer`: how long after expiry DynamoDB TTL may delete an item (one day).
    - `wall_clock`: epoch seconds (``time.time``), and `token_factory`: new unique tokens.
    - `suspend_clock`: seconds on a monotonic clock that counts time the host was suspended
      (Linux ``CLOCK_BOOTTIME``): a holder's validity shrinks by the time it slept.
    - `hooks`: callables given a `LeaseEvent` for every acquire, contention, wait, refresh,
      failed refresh, loss and release (for metrics and tracing; exceptions are logged).

    Use `async with manager:` to have leases from `acquire()` heartbeated until released;
    leases from `lease()` are always heartbeated. Inside a running manager one scheduler
    task serves every held lease (a sleeping lease costs no task), and a `lease()` block
    still running when the manager stops is stopped (`LeaseLostError`) and released.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        owner: str | None = None,
        default_ttl: Duration = 30.0,
        heartbeat_interval: Duration | None = None,
        safety_margin: Duration | None = None,
        max_clock_skew: Duration = 1.0,
        poll_interval: Duration = 1.0,
        backoff: Duration = 1.0,
        release_timeout: Duration = 5.0,
        attribute_names: Mapping[str, str] | None = None,
        sort_key: tuple[str, str] | None = None,
        ttl_buffer: Duration = timedelta(days=1),
        wall_clock: Callable[[], float] = time.time,
        suspend_clock: Callable[[], float] = suspend_aware_clock,
        token_factory: Callable[[], str] | None = None,
        hooks: Iterable[Callable[[LeaseEvent], object]] = (),
    ) -> None:
        _check_client(client)
        if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
            raise LeaseConfigError(
                f"table must be a DynamoDB table name (3-255 characters of letters, digits, "
                f"'_', '-' and '.'), got {table!r}"
            )
        if owner is None:
            owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        elif not isinstance(owner, str) or not owner:
            raise LeaseConfigError(f"owner must be a non-empty string, got {owner!r}")
        _utf8_size(owner, name="owner")
        if sort_key is not None and not (
            isinstance(sort_key, tuple)
            and len(sort_key) == 2  # noqa: PLR2004
            and all(isinstance(part, str) and part for part in sort_key)
        ):
            raise LeaseConfigError(
                "sort_key must be a tuple (attribute_name, value) of two non-empty strings, "
                f"got {sort_key!r}"
            )
        if sort_key is not None:
            _utf8_size(sort_key[1], name="sort_key value")
        _check_callable(wall_clock=wall_clock, suspend_clock=suspend_clock)
        if token_factory is not None:
            _check_callable(token_factory=token_factory)
        self.table = table
        self.owner = owner
        self.default_ttl = seconds(default_ttl, name="default_ttl", bounds=TTL)
        self.heartbeat_interval = optional_seconds(
            heartbeat_interval, name="heartbeat_interval", bounds=HEARTBEAT_INTERVAL
        )
        self.safety_margin = optional_seconds(
            safety_margin, name="safety_margin", bounds=SAFETY_MARGIN
        )
        self.max_clock_skew = seconds(max_clock_skew, name="max_clock_skew", bounds=MAX_CLOCK_SKEW)
        self.poll_interval = seconds(poll_interval, name="poll_interval", bounds=POLL_INTERVAL)
        self.backoff = seconds(backoff, name="backoff", bounds=BACKOFF)
        self.release_timeout = seconds(
            release_timeout, name="release_timeout", bounds=RELEASE_TIMEOUT
        )
        self.ttl_buffer = seconds(ttl_buffer, name="ttl_buffer", bounds=TTL_BUFFER)
        if self.max_clock_skew >= self.ttl_buffer:
            raise LeaseConfigError(
                f"max_clock_skew ({self.max_clock_skew} s) must be below ttl_buffer "
                f"({self.ttl_buffer} s): DynamoDB deletes expired items by its own clock"
            )
        self._wall_clock = wall_clock
        self._suspend_clock = suspend_clock
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None  # set on first use
        self._token_factory = token_factory or _new_token
        self._hooks = tuple(hooks)
        if not all(callable(hook) for hook in self._hooks):
            raise LeaseConfigError(f"hooks must be callables taking a LeaseEvent, got {hooks!r}")
        self._store = Store(client, table, attribute_names=attribute_names, sort_key=sort_key)
        self._timing(None)  # the defaults must fit together
        self._checked = False
        self._check_lock: anyio.Lock | None = None
        self._task_group: TaskGroup | None = None
        self._tracked: set[Lease] = set()
        # Heartbeats of the leases held while running, earliest first, served by one
        # scheduler task; `_wake` tells it of an entry earlier than it sleeps for.
        # Entries are (due, tie-breaker, lease, the lease's last send time when planned).
        self._due: list[tuple[float, int, Lease, float]] = []
        self._sequence = itertools.count()
        self._wake: anyio.Event | None = None
        self._blocks: set[Lease] = set()  # leases of lease() blocks the scheduler heartbeats

    def __repr__(self) -> str:
        return f"<LeaseManager table={self.table!r} owner={self.owner!r}>"

    @property
    def running(self) -> bool:
        """True inside ``async with manager:``, where `acquire()` leases are heartbeated."""
        return self._task_group is not None

    # -- running: heartbeats for acquire() leases ---------------------------------------

    async def __aenter__(self) -> Self:
        self._bind_loop()
        if self._task_group is not None:
            raise LeaseConfigError("this LeaseManager is already running (async with manager)")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        task_group.start_soon(self._schedule_heartbeats)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group = self._task_group
        assert task_group is not None  # noqa: S101
        try:
            for lease in list(self._blocks):
                # Nothing will heartbeat it any more: its block must stop now.
                lease._mark_lost("expired", "its manager stopped running")  # noqa: SLF001
            async with anyio.create_task_group() as releases:
                for lease in list(self._tracked):
                    releases.start_soon(self._release_quietly, lease)
        finally:
            self._task_group = None
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(None, None, None)
            self._due.clear()

    # -- the table ------------------------------------------------------------------------

    async def create_table(self) -> bool:
        """Create the lease table if missing, wait until ACTIVE, and enable TTL.

        Idempotent: returns True if it created the table, False if it existed (with a
        usable schema). Uses on-demand billing. TTL is enabled where the server supports it.
        """
        self._bind_loop()
        created = await self._store.create_table()
        delay = _FIRST_BACKOFF
        while True:
            description = await self._store.describe_table()
            if description.get("TableStatus") == "ACTIVE":
                break
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)
        self._check_schema(description)
        self._checked = True
        if not await self._store.enable_ttl():
            logger.info("table %r: the server does not support TTL; skipped", self.table)
        return created

    # -- leases -----------------------------------------------------------------------------

    def lease(
        self,
        key: str,
        *,
        ttl: Duration | None = None,
        timeout: Duration | None = None,
        data: Any = UNSET,
    ) -> _LeaseContext:
        """Hold `key` for the body of an ``async with`` block, heartbeated throughout.

        Waits until the key is free (or `timeout` seconds; 0 tries once). The body is
        cancelled if the lease is lost or its local deadline (minus the safety margin)
        arrives without a successful refresh, and the block then raises `LeaseLostError`.
        On exit the lease is released, shielded from cancellation and bounded in time.
        """
        _check_key(key)
        timing = self._timing(ttl)
        limit = optional_seconds(timeout, name="timeout", bounds=ACQUIRE_TIMEOUT)
        return _LeaseContext(self, key, timing, limit, _encode_data(data))

    async def acquire(
        self,
        key: str,
        *,
        ttl: Duration | None = None,
        timeout: Duration | None = None,
        data: Any = UNSET,
    ) -> Lease:
        """Take the lease on `key` and return it.

        `timeout=None` waits until acquired (or cancelled); 0 tries once and raises
        `LeaseHeldError`; otherwise waits up to `timeout` seconds, then raises
        `LeaseTimeoutError` (or `LeaseStoreError` if the store kept failing). `data`
        replaces the stored data (None clears it; omitted keeps it). While the manager runs
        (``async with manager``) the lease is heartbeated until released.
        """
        _check_key(key)
        timing = self._timing(ttl)
        limit = optional_seconds(timeout, name="timeout", bounds=ACQUIRE_TIMEOUT)
        lease = await self._acquire(key, timing, limit, _encode_data(data))
        if self._task_group is not None:
            self._tracked.add(lease)
            self._enqueue(lease, first=True)
        return lease

    async def refresh(self, lease: Lease, *, data: Any = UNSET) -> None:
        """Extend `lease` by its ttl from now (and replace its data if given).

        Retries transient failures until the local deadline. Raises `LeaseLostError` when
        the lease is no longer ours or its local deadline passed; never re-takes a key.
        """
        self._bind_loop()
        _check_lease(lease)
        payload = _encode_data(data)
        lease.ensure_held()
        async with lease._writes():  # noqa: SLF001
            lease.ensure_held()
            await self._renew(lease, payload, retry_permanent=False)

    async def release(self, lease: Lease, *, data: Any = UNSET) -> bool:
        """Give `lease` up; return False if it was no longer ours or is already released.

        From the moment it starts the lease is no longer held (`held` is False). Stops its
        heartbeat, then clears the holder with one token-conditioned write that keeps the
        fence (and the data, unless `data` is given). Shielded from cancellation and bounded
        by `release_timeout`; raises `LeaseStoreError` if it could not complete, and can then
        be called again to finish. Of concurrent calls, one does the work; the others
        return False.
        """
        _check_lease(lease)
        return await self._release(lease, _encode_data(data))

    async def break_lease(self, key: str) -> LeaseInfo | None:
        """Force-release `key` whoever holds it (an operator's tool); return who held it.

        Reads the holder, then clears exactly that grant (its token and fence): a break the
        SDK re-sends never breaks the next holder. Returns None if nobody held the key, or if
        the holder it found let go before the break landed. The fence is kept, so the
        next holder's fence is still higher. The former holder finds out at its next
        refresh (reason ``"released"``).
        """
        self._bind_loop()
        _check_key(key)
        await self._ensure_checked()
        found = await self._store.get(key)
        if found is None or found.token is None:
            return None
        marker = f"!broken:{self._new_token()}"
        outcome = await self._store.break_lease(
            key, token=found.token, fence=found.fence, marker=marker
        )
        if outcome.applied:
            return _info(outcome.record or found)
        # Refused: our marker on the item means an earlier send of this break applied.
        after = outcome.record or await self._read_quietly(key)
        ours = isinstance(after, Record) and marker in {after.released, after.released_before}
        return _info(found) if ours else None

    async def get(self, key: str) -> LeaseInfo | None:
        """Who holds `key` now (strongly consistent read), or None if nobody does."""
        self._bind_loop()
        _check_key(key)
        await self._ensure_checked()
        record = await self._store.get(key)
        return _info(record) if record is not None and self._is_held(record) else None

    async def list(self, prefix: str = "") -> AsyncIterator[LeaseInfo]:
        """The held leases whose key starts with `prefix`, page by page (a consistent Scan)."""
        self._bind_loop()
        if not isinstance(prefix, str):
            raise LeaseConfigError(f"prefix must be a string, got {prefix!r}")
        _utf8_size(prefix, name="prefix")
        await self._ensure_checked()
        start: Mapping[str, Any] | None = None
        while True:
            records, start = await self._store.scan_page(prefix, start=start)
            for record in records:
                if self._is_held(record):
                    yield _info(record)
            if start is None:
                return

    # -- acquiring ------------------------------------------------------------------------

    async def _acquire(
        self, key: str, timing: _Timing, limit: float | None, data: DataUpdate
    ) -> Lease:
        self._bind_loop()
        state = _Acquisition(token=self._new_token(), version=self._new_token())
        started = anyio.current_time()
        give_up_at = math.inf if limit is None else started + limit
        await self._check_until(give_up_at, state)
        try:
            while True:
                result = await self._attempt(
                    key, state, timing=timing, data=data, limit=limit, give_up_at=give_up_at
                )
                if isinstance(result, Lease):
                    if self._hooks:
                        result._on_lost = self._lost  # noqa: SLF001
                        self._acquired(result, state, started)
                    return result
                now = anyio.current_time()
                if now >= give_up_at:
                    raise self._give_up(key, limit, state)  # noqa: TRY301 (undo below applies)
                await anyio.sleep(min(result, give_up_at - now))
        except BaseException as error:
            if state.maybe_ours or state.in_flight or state.in_network:
                await self._undo(key, state.token, data)
            if self._hooks and state.contended:
                reason = "timeout" if isinstance(error, LeaseHeldError) else "failed"
                waited = anyio.current_time() - started
                self._emit(LeaseEvent("waited", key, self.owner, duration=waited, reason=reason))
            raise

    def _acquired(self, lease: Lease, state: _Acquisition, started: float) -> None:
        duration = anyio.current_time() - started
        if state.contended:
            self._emit(
                LeaseEvent("waited", lease.key, self.owner, duration=duration, reason="acquired")
            )
        self._emit(
            LeaseEvent("acquired", lease.key, self.owner, fence=lease.fence, duration=duration)
        )

    def _lost(self, lease: Lease, lost: LeaseLostError) -> None:
        self._emit(LeaseEvent("lost", lease.key, self.owner, fence=lease.fence, reason=lost.reason))

    def _emit(self, event: LeaseEvent) -> None:
        """Hand `event` to every hook; a failing hook is logged, never raised."""
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                logger.exception("lease event hook %r failed on %s", hook, event.kind)

    async def _attempt(
        self,
        key: str,
        state: _Acquisition,
        *,
        timing: _Timing,
        data: DataUpdate,
        limit: float | None,
        give_up_at: float,
    ) -> Lease | float:
        """One acquire request: the lease, or how long to wait before the next try."""
        state.failure = None
        if (
            state.unknown_since is not None
            and anyio.current_time() - state.unknown_since >= timing.ttl - timing.safety_margin
        ):
            # A grant of this token could no longer be handed out: undo whatever of it is
            # in force and go on with a fresh token, whose validity counts from its own send.
            await self._abandon(key, state, data)
        sent_at, suspended = anyio.current_time(), self._suspended()
        outcome = await self._acquire_once(
            key, state, timing, data, self._request_allowance(limit, give_up_at - sent_at)
        )
        if outcome is None:
            state.unknown(sent_at, suspended)
            if state.failure is None:  # the request got no answer in the time allowed
                state.failure = _no_answer("UpdateItem", anyio.current_time() - sent_at)
            return self._next_backoff(state)
        granted: Record | _Unreadable | None = outcome.record
        if not outcome.applied:
            granted = outcome.record or await self._read_quietly(key)
            if not isinstance(granted, Record) or granted.token != state.token:
                return self._contended(key, granted, state, resent=outcome.resent)
            if granted.version != state.version:
                # An older write of this acquire landed late: undo it, start afresh.
                await self._abandon(key, state, data)
                return self._next_backoff(state)
            # Refused, yet our token and version are in force: an earlier send of this write
            # (ours, or the SDK's re-send of this one) applied. That is our grant.
        assert isinstance(granted, Record)  # noqa: S101
        state.maybe_ours = True  # ours in force: undone if anything stops it being handed out
        lease = self._hand_out(granted, state, timing, sent_at, suspended)
        if lease is not None:
            return lease
        # The answer came after the lease it granted had run out: not handed out.
        received_at = anyio.current_time()
        await self._abandon(key, state, data)
        state.failure = LeaseStoreError(
            f"UpdateItem answered after {received_at - sent_at:.3f} s, longer than the "
            f"lease lasts ({timing.ttl - timing.safety_margin:.3f} s)",
            operation="UpdateItem",
            transient=True,
            maybe_applied=True,
        )
        return self._next_backoff(state)

    def _hand_out(
        self,
        record: Record,
        state: _Acquisition,
        timing: _Timing,
        sent_at: float,
        suspended: float,
    ) -> Lease | None:
        """The lease granted in `record`, or None if its answer came too late to use it."""
        if record.fence is None:
            raise LeaseStoreError(
                f"the item of lease {record.key!r} holds a fence that is not an integer, so "
                "no fenced lease can be handed out: repair or remove its fence attribute "
                "(a missing fence is seeded again from the clock)",
                operation="UpdateItem",
                transient=False,
                maybe_applied=True,
            )
        # Count from the earliest attempt that may have written this version.
        if state.unknown_since is not None:
            sent_at, suspended = state.unknown_since, state.unknown_suspended
        lease = Lease(
            record=record,
            ttl=timing.ttl,
            sent_at=sent_at,
            safety_margin=timing.safety_margin,
            heartbeat_interval=timing.heartbeat_interval,
            suspended=self._suspended,
            suspended_at_send=suspended,
        )
        if anyio.current_time() >= lease._valid_until:  # noqa: SLF001
            return None
        state.maybe_ours = state.in_network = False
        return lease

    async def _abandon(self, key: str, state: _Acquisition, data: DataUpdate) -> None:
        """Undo a grant of ours that can no longer be handed out; go on with a fresh token.

        Re-taking it with the same token would write the data found a second time over
        what the undo must put back; a fresh token is a fresh grant, applied exactly once.
        """
        await self._undo(key, state.token, data)
        state.restart(self._new_token(), self._new_token())

    def _contended(
        self, key: str, found: Record | _Unreadable | None, state: _Acquisition, *, resent: bool
    ) -> float:
        """After a refusal that is not ours: note the holder, and how long to wait."""
        if resent:
            state.in_network = True  # an earlier send of this attempt may yet arrive
        state.refused(self._new_token())
        if isinstance(found, _Unreadable):
            return self.poll_interval
        state.holder = found
        if found is None or found.token is None:
            return self._next_backoff(state)  # freed in between: try again soon
        now = anyio.current_time()
        state.observe(found, now)
        state.contended += 1
        retry_after = self._retry_after(found, state.observed, now)
        if self._hooks:
            self._emit(
                LeaseEvent(
                    "contended",
                    key,
                    self.owner,
                    fence=found.fence,
                    holder=found.owner,
                    retry_after=retry_after,
                )
            )
        poll = self.poll_interval * random.uniform(0.8, 1.0)  # noqa: S311
        return max(0.001, min(retry_after, poll))

    async def _acquire_once(
        self, key: str, state: _Acquisition, timing: _Timing, data: DataUpdate, allowance: float
    ) -> Outcome | None:
        """One acquire request; None when it failed transiently or got no answer in time."""
        wall = self._wall_clock()
        observed = state.observed
        now = anyio.current_time()
        seen = (
            observed.version
            if observed is not None and now - observed.since >= observed.duration
            else None
        )
        state.in_flight = True
        with anyio.move_on_after(allowance):
            try:
                outcome = await self._store.acquire(
                    key,
                    owner=self.owner,
                    token=state.token,
                    version=state.version,
                    expires_at_ms=math.ceil((wall + timing.ttl) * 1000),
                    duration_ms=math.ceil(timing.ttl * 1000),
                    ttl_epoch_s=math.ceil(wall + timing.ttl + self.ttl_buffer),
                    stale_before_ms=math.floor((wall - self.max_clock_skew) * 1000),
                    seen_version=seen,
                    fence_seed=math.floor(wall * 1_000_000),
                    data=data,
                )
            except LeaseStoreError as error:
                state.in_flight = False
                if not error.transient:
                    if error.maybe_applied:
                        state.maybe_ours = True
                    raise
                # botocore may have retried an applied write before this final error.
                state.failure = error
                return None
            state.in_flight = False
            return outcome
        # No answer in the time allowed. (If the caller itself was cancelled, in_flight
        # stays set and the acquire's undo runs.)
        state.in_flight = False
        return None

    def _next_backoff(self, state: _Acquisition) -> float:
        delay = self._backoff_delay(state.failures)
        state.failures += 1
        return delay

    def _request_allowance(self, limit: float | None, remaining: float) -> float:
        """How long one acquire request may take: the time left, but never too little.

        A final attempt made at the timeout still gets `_MIN_ALLOWANCE` to complete; a
        single try (timeout 0) or an unbounded wait leaves the client's own timeouts in charge.
        """
        if limit is None or limit == 0:
            return math.inf
        return max(remaining, _MIN_ALLOWANCE)

    def _retry_after(self, holder: Record, observed: _Observation | None, now: float) -> float:
        """Seconds until a contender may take `holder`'s lease over by either rule."""
        waits = []
        if holder.expires_at_ms is not None:
            waits.append(holder.expires_at_ms / 1000 + self.max_clock_skew - self._wall_clock())
        if observed is not None:
            waits.append(observed.since + observed.duration - now)
        return max(0.0, min(waits, default=self.poll_interval))

    def _give_up(self, key: str, limit: float | None, state: _Acquisition) -> LeaseError:
        if state.failure is not None:
            return state.failure
        holder, observed = state.holder, state.observed
        owner = None if holder is None else holder.owner
        expires = (
            None
            if holder is None or holder.expires_at_ms is None
            else utc_from_ms(holder.expires_at_ms)
        )
        retry_after = (
            self.poll_interval
            if holder is None
            else self._retry_after(holder, observed, anyio.current_time())
        )
        until = "" if expires is None else f" until {expires.isoformat()}"
        message = (
            f"lease {key!r} is held by {owner!r}{until}; "
            f"it may be taken over in {retry_after:.3f} s"
        )
        if limit == 0:
            return LeaseHeldError(
                message, key=key, owner=owner, expires_at=expires, retry_after=retry_after
            )
        return LeaseTimeoutError(
            f"timed out after {limit} s: {message}",
            key=key,
            owner=owner,
            expires_at=expires,
            retry_after=retry_after,
        )

    async def _undo(self, key: str, token: str, data: DataUpdate) -> None:
        """Release a grant we may have won but will not hand out (shielded, bounded).

        First the token is revoked on the item, so that a write of this acquire still in
        the network cannot land afterwards; then whatever of ours did land is released,
        with the data it found put back if the acquire wrote any.
        """
        restore = UNSET if isinstance(data, _Unset) else RESTORE

        async def undo() -> bool:
            await self._revoke(key, token)
            return await self._release_with_retries(key, token, restore)

        try:
            finished, _ = await shielded(undo, timeout=self.release_timeout)
        except LeaseStoreError as error:
            finished = False
            logger.warning("could not undo an unfinished acquire of %r: %s", key, error)
        if not finished:
            logger.warning("an unfinished acquire of %r may hold it until its ttl lapses", key)

    # -- refreshing -----------------------------------------------------------------------

    async def _heartbeat(self, lease: Lease) -> None:
        """Refresh `lease` every heartbeat interval until it is released or lost.

        The heartbeat of a ``lease()`` block outside a running manager, in the block's
        own task group.
        """
        with anyio.CancelScope() as scope:
            lease._heartbeat_scope = scope  # noqa: SLF001
            try:
                while lease._active():  # noqa: SLF001
                    await anyio.sleep_until(lease._last_sent + lease._heartbeat_interval)  # noqa: SLF001
                    await self._beat(lease)
            finally:
                lease._heartbeat_scope = None  # noqa: SLF001

    async def _beat(self, lease: Lease) -> None:
        """One heartbeat: refresh `lease` unless it is over; a failure ends the lease."""
        try:
            async with lease._writes():  # noqa: SLF001
                if lease._active():  # noqa: SLF001
                    await self._renew(lease, UNSET, retry_permanent=True)
        except LeaseLostError as lost:
            logger.warning("%s", lost)
        except Exception as error:  # a bug must not leave the holder running unnoticed
            logger.exception("heartbeat of %r failed", lease.key)
            lease._mark_lost("expired", f"its heartbeat failed: {error!r}")  # noqa: SLF001

    def _enqueue(self, lease: Lease, *, first: bool = False) -> None:
        """Schedule the next heartbeat of `lease` with the running scheduler."""
        interval = lease._heartbeat_interval  # noqa: SLF001
        if first:
            interval *= random.uniform(*_FIRST_HEARTBEAT_SPREAD)  # noqa: S311
        due = lease._last_sent + interval  # noqa: SLF001
        if self._wake is not None and (not self._due or due < self._due[0][0]):
            self._wake.set()
        heapq.heappush(self._due, (due, next(self._sequence), lease, lease._last_sent))  # noqa: SLF001

    async def _schedule_heartbeats(self) -> None:
        """Start each held lease's heartbeat when due: one task for all of them.

        A sleeping lease costs a heap entry instead of a task; each heartbeat runs in a
        task of its own, so a slow refresh never delays the others.
        """
        task_group = self._task_group
        assert task_group is not None  # noqa: S101
        due = self._due
        while True:
            now = anyio.current_time()
            started = 0
            while due and due[0][0] <= now + _HEARTBEAT_GRAIN and started < _HEARTBEAT_BATCH:
                _, _, lease, planned_from = heapq.heappop(due)
                if not lease._active():  # noqa: SLF001
                    self._forget_if_settled(lease)
                elif lease._last_sent != planned_from:  # noqa: SLF001
                    self._enqueue(lease)  # refreshed meanwhile by a direct refresh()
                else:
                    task_group.start_soon(self._tracked_beat, lease)
                    started += 1
            if started == _HEARTBEAT_BATCH:
                await anyio.lowlevel.checkpoint()  # run these before starting more
                continue
            self._wake = wake = anyio.Event()
            with anyio.move_on_after(due[0][0] - now if due else math.inf):
                await wake.wait()

    async def _tracked_beat(self, lease: Lease) -> None:
        with anyio.CancelScope() as scope:
            lease._heartbeat_scope = scope  # noqa: SLF001
            try:
                await self._beat(lease)
            finally:
                lease._heartbeat_scope = None  # noqa: SLF001
        if lease._active() and self._task_group is not None:  # noqa: SLF001
            self._enqueue(lease)
        else:
            self._forget_if_settled(lease)

    def _forget_if_settled(self, lease: Lease) -> None:
        """Stop tracking `lease` unless it may still stand in the store.

        A lease lost to its deadline (a refresh answered too late may have applied) stays
        tracked, so that the manager's exit releases it rather than leave the key blocked.
        """
        if lease._settled_in_store():  # noqa: SLF001
            self._tracked.discard(lease)

    async def _renew(self, lease: Lease, data: DataUpdate, *, retry_permanent: bool) -> None:
        """One logical refresh, retried until the local deadline; the caller holds the lock."""
        version = self._new_token()
        # Later than every write of ours so far, sent or not: taken before the first send,
        # so that a refresh that never finishes cannot leave its number to a later one.
        sequence = lease._sequence = lease._sequence + 1  # noqa: SLF001
        failures = 0
        started = anyio.current_time()
        # Send time of the earliest unanswered attempt: waiters may time the new version
        # from then, so the renewed deadline counts from there.
        unknown_since: float | None = None
        unknown_suspended = 0.0
        while True:
            if not lease._active():  # noqa: SLF001  (a release started, or it was lost)
                raise lease._lost or lease._released_error()  # noqa: SLF001
            sent_at, suspended = anyio.current_time(), self._suspended()
            if sent_at >= lease._valid_until:  # noqa: SLF001
                lost = lease._mark_lost(  # noqa: SLF001
                    "expired", "its local deadline passed before a refresh succeeded"
                )
                raise lost from lease._last_failure  # noqa: SLF001
            outcome = await self._refresh_once(lease, version, sequence, data, retry_permanent)
            if outcome is None:
                if unknown_since is None:
                    unknown_since, unknown_suspended = sent_at, suspended
                remaining = lease._valid_until - anyio.current_time()  # noqa: SLF001
                await anyio.sleep(max(0.0, min(self._backoff_delay(failures), remaining)))
                failures += 1
                continue
            if not outcome.applied:
                record = outcome.record or await self._read_quietly(lease.key)
                raise lease._mark_lost(*_why_lost(record, lease.token))  # noqa: SLF001
            if anyio.current_time() >= lease._valid_until:  # noqa: SLF001
                # Too late: the holder already had to stop. Do not revive the lease.
                raise lease._mark_lost(  # noqa: SLF001
                    "expired", "a refresh was answered only after its local deadline"
                )
            assert outcome.record is not None  # noqa: S101
            if unknown_since is not None:
                sent_at, suspended = unknown_since, unknown_suspended
            lease._renewed(  # noqa: SLF001
                outcome.record, sent_at=sent_at, suspended_at_send=suspended, sequence=sequence
            )
            if self._hooks:
                duration = anyio.current_time() - started
                self._emit(
                    LeaseEvent(
                        "refreshed", lease.key, self.owner, fence=lease.fence, duration=duration
                    )
                )
            return

    async def _refresh_once(
        self, lease: Lease, version: str, sequence: int, data: DataUpdate, retry_permanent: bool
    ) -> Outcome | None:
        """One refresh request bounded by the local deadline; None when it got no answer."""
        wall = self._wall_clock()
        with anyio.move_on_after(lease._valid_until - anyio.current_time()):  # noqa: SLF001
            try:
                return await self._store.refresh(
                    lease.key,
                    token=lease.token,
                    version=version,
                    expires_at_ms=math.ceil((wall + lease.ttl) * 1000),
                    duration_ms=math.ceil(lease.ttl * 1000),
                    ttl_epoch_s=math.ceil(wall + lease.ttl + self.ttl_buffer),
                    sequence=sequence,
                    data=data,
                )
            except TableNotFoundError as error:
                if not retry_permanent:
                    raise
                # The table, and the item with it, is gone: nothing left to refresh.
                lost = lease._mark_lost("deleted", f"its table is gone: {error}")  # noqa: SLF001
                raise lost from error
            except LeaseStoreError as error:
                if not (error.transient or retry_permanent):
                    raise
                lease._last_failure = error  # noqa: SLF001
                if self._hooks:
                    self._emit(
                        LeaseEvent(
                            "refresh_failed", lease.key, self.owner, fence=lease.fence, error=error
                        )
                    )
                logger.log(
                    logging.INFO if error.transient else logging.ERROR,
                    "refresh of %r failed, retrying until its deadline: %s",
                    lease.key,
                    error,
                )
        return None

    # -- releasing ------------------------------------------------------------------------

    async def _release(self, lease: Lease, data: DataUpdate) -> bool:
        """The release path: one call does the work, under the lease's write lock.

        From the moment it starts the holder's view is "not held" (`held` is False and
        `ensure_held()` raises), whether or not the write completes; a call after one that
        gave up finishes the job. Any other call, concurrent or later, returns False.
        """
        self._bind_loop()
        if lease._settled_in_store():  # noqa: SLF001
            return False  # released already, or the store showed someone else's state
        in_time = lease._lost is None and anyio.current_time() < lease._valid_until  # noqa: SLF001
        timeout = (
            self.release_timeout if in_time else min(self.release_timeout, _EXPIRED_RELEASE_TIMEOUT)
        )
        lease._mark_releasing()  # noqa: SLF001  (also stops its heartbeat)

        async def release() -> bool:
            async with lease._writes():  # noqa: SLF001  (waits out a refresh or another release)
                if lease._settled_in_store():  # noqa: SLF001
                    return False  # another call released it meanwhile
                released = await self._release_with_retries(
                    lease.key,
                    lease.token,
                    data,
                    valid_until=lease._valid_until,  # noqa: SLF001
                )
                # Settled here, inside the shield, even if the caller is cancelled meanwhile.
                lease._mark_released()  # noqa: SLF001
                if released and (data is None or isinstance(data, str)):
                    lease.data = decode_data(data)
            self._tracked.discard(lease)
            if self._hooks:
                self._emit(
                    LeaseEvent(
                        "released",
                        lease.key,
                        self.owner,
                        fence=lease.fence,
                        duration=anyio.current_time() - lease._granted_at,  # noqa: SLF001
                        released=released,
                    )
                )
            return released

        finished, released = await shielded(release, timeout=timeout)
        if not finished or released is None:
            raise LeaseStoreError(
                f"release of {lease.key!r} did not complete within {timeout} s; "
                "the lease lapses at its expiry unless released again",
                operation="UpdateItem",
                transient=True,
                maybe_applied=True,
            )
        return released

    async def _release_with_retries(
        self, key: str, token: str, data: DataUpdate, *, valid_until: float | None = None
    ) -> bool:
        """Clear `token`'s hold on `key`, retrying transient failures; True if it was ours.

        `valid_until` is the lease's local deadline, if known: before it nobody else may
        take the lease over, so a retry refused before then means an earlier attempt of
        ours applied (the markers below say so too, while they last).
        """
        failures = 0
        maybe_applied = False
        while True:
            try:
                outcome = await self._store.release(key, token=token, data=data)
            except LeaseStoreError as error:
                if not error.transient:
                    raise
                maybe_applied = True  # botocore may have retried an applied write
                logger.info("release of %r failed, retrying: %s", key, error)
                await anyio.sleep(self._backoff_delay(failures))
                failures += 1
                continue
            if outcome.applied:
                return True
            maybe_applied = maybe_applied or outcome.resent  # an earlier send of the SDK's
            # Judged by when the refusal came back: a retry sent in time but held in the
            # network may be refused by a holder that legitimately took over meanwhile.
            if maybe_applied and valid_until is not None and anyio.current_time() < valid_until:
                return True
            record = outcome.record or await self._read_quietly(key)
            # Our marker on the item means an earlier attempt (ours or the SDK's retry) applied;
            # the next grant keeps it one step back, in case that holder released too.
            return isinstance(record, Record) and token in {record.released, record.released_before}

    async def _revoke(self, key: str, token: str) -> None:
        """Add `token` to `key`'s revoked tokens, retrying transient failures."""
        previous: tuple[str, ...] = ()  # the usual case; a refusal tells the real list
        failures = 0
        while True:
            try:
                outcome = await self._store.revoke(key, token=token, previous=previous)
            except LeaseStoreError as error:
                if not error.transient:
                    raise
                logger.info("revoking an unfinished acquire of %r failed, retrying: %s", key, error)
            else:
                if outcome.applied:
                    return
                found = outcome.record or await self._read_quietly(key)
                if not isinstance(found, _Unreadable):
                    current = () if found is None else found.revoked
                    if token in current:
                        return  # an earlier send of ours applied
                    previous = current  # another undo came first: add ours to its list
                    continue
            await anyio.sleep(self._backoff_delay(failures))
            failures += 1

    async def _release_quietly(self, lease: Lease) -> None:
        try:
            await self._release(lease, UNSET)
        except LeaseStoreError as error:
            logger.warning("could not release %r: %s", lease.key, error)

    # -- helpers --------------------------------------------------------------------------

    def _timing(self, ttl: Duration | None) -> _Timing:
        lease_ttl = self.default_ttl if ttl is None else seconds(ttl, name="ttl", bounds=TTL)
        heartbeat = self.heartbeat_interval or lease_ttl / 3
        least_margin = least_safety_margin(lease_ttl)
        margin = self.safety_margin
        if margin is None:
            margin = default_safety_margin(lease_ttl)
        if margin < least_margin:
            raise LeaseConfigError(
                f"safety_margin ({margin} s) must be at least ttl/1000 + 1 ms "
                f"({least_margin:.6g} s for a ttl of {lease_ttl} s): the version rule relies on "
                "it to cover a drift of up to 0.1 % between two hosts' monotonic clocks"
            )
        if heartbeat >= lease_ttl / 2:
            raise LeaseConfigError(
                f"heartbeat_interval ({heartbeat} s) must be below half the ttl ({lease_ttl} s) "
                "so that a failed refresh can be retried; lower heartbeat_interval or raise ttl"
            )
        if margin + heartbeat >= lease_ttl:
            raise LeaseConfigError(
                f"safety_margin ({margin} s) + heartbeat_interval ({heartbeat} s) must be below "
                f"the ttl ({lease_ttl} s); lower them or raise ttl"
            )
        return _Timing(lease_ttl, heartbeat, margin)

    def _is_held(self, record: Record) -> bool:
        if record.token is None or record.expires_at_ms is None:
            return False
        return record.expires_at_ms / 1000 + self.max_clock_skew >= self._wall_clock()

    def _suspended(self) -> float:
        """How long the host has been suspended so far, give or take a constant.

        The suspend-aware clock runs on while the host sleeps; the loop's monotonic clock
        does not, so their difference grows by the time spent suspended.
        """
        return self._suspend_clock() - anyio.current_time()

    def _backoff_delay(self, failures: int) -> float:
        ceiling = min(self.backoff, _FIRST_BACKOFF * 2.0 ** min(failures, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311

    def _new_token(self) -> str:
        token = self._token_factory()
        if not isinstance(token, str) or not token:
            raise LeaseConfigError(f"token_factory must return a non-empty string, got {token!r}")
        _utf8_size(token, name="a token from token_factory")
        return token

    def _bind_loop(self) -> None:
        """Refuse use from an event loop other than the first one (a clear error, not a hang).

        The client, and the manager's locks and events, belong to the loop that made them;
        from another loop their requests fail with "Event loop is closed" or worse.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on asyncio: the client will say so
        if self._loop is None:
            self._loop = weakref.ref(loop)
            return
        first = self._loop()
        if first is not loop:
            raise LeaseConfigError(
                "this LeaseManager was first used on another event loop"
                + (" (now closed)" if first is None or first.is_closed() else "")
                + "; a manager and its client belong to one loop: create both inside the "
                "loop that uses them (for example in the same asyncio.run() call)"
            )

    async def _read_quietly(self, key: str) -> Record | _Unreadable | None:
        """The item for `key`, for servers that do not return it on a failed condition."""
        try:
            return await self._store.get(key)
        except LeaseStoreError as error:
            logger.info("could not read %r after a failed condition: %s", key, error)
            return UNREADABLE

    async def _check_until(self, give_up_at: float, state: _Acquisition) -> None:
        """Check the table before the first acquire, retrying transient failures until then."""
        while True:
            try:
                await self._ensure_checked()
            except LeaseStoreError as error:
                now = anyio.current_time()
                if not error.transient or now >= give_up_at:
                    raise
                logger.info("checking table %r failed, retrying: %s", self.table, error)
                await anyio.sleep(min(self._next_backoff(state), give_up_at - now))
            else:
                state.failures = 0
                return

    async def _ensure_checked(self) -> None:
        if self._checked:
            return
        if self._check_lock is None:
            self._check_lock = anyio.Lock()
        async with self._check_lock:
            if not self._checked:
                self._check_schema(await self._store.describe_table())
                self._checked = True

    def _check_schema(self, description: Mapping[str, Any]) -> None:
        """Refuse a table whose keys do not match, or that replicates last-writer-wins."""
        types = {
            a["AttributeName"]: a["AttributeType"]
            for a in description.get("AttributeDefinitions", ())
        }
        schema = {k["KeyType"]: k["AttributeName"] for k in description.get("KeySchema", ())}
        key_name = self._store.names["key"]
        wanted = {"HASH": key_name}
        if self._store.sort_key is not None:
            wanted["RANGE"] = self._store.sort_key[0]
        if schema != wanted or any(types.get(name) != "S" for name in wanted.values()):
            found = ", ".join(f"{kind} {name} ({types.get(name)})" for kind, name in schema.items())
            hint = (
                "pass sort_key=(name, value) for a table with a sort key"
                if "RANGE" in schema and "RANGE" not in wanted
                else "use attribute_names={'key': ...} and sort_key to match the table, "
                "or create a table with LeaseManager.create_table()"
            )
            raise LeaseConfigError(
                f"table {self.table!r} has key schema [{found}], but aiolease needs "
                + ", ".join(f"{kind} {name} (S)" for kind, name in wanted.items())
                + f"; {hint}"
            )
        if description.get("Replicas") and description.get("MultiRegionConsistency") != "STRONG":
            raise LeaseConfigError(
                f"table {self.table!r} is a global table with eventually consistent "
                "replication: two Regions could both grant a lease. Use a single-Region table "
                "or a global table with multi-Region strong consistency (MRSC)"
            )


class _LeaseContext:
    """The ``async with manager.lease(...)`` block: acquire, heartbeat, cancel, release."""

    def __init__(
        self,
        manager: LeaseManager,
        key: str,
        timing: _Timing,
        limit: float | None,
        data: DataUpdate,
    ) -> None:
        self._manager = manager
        self._key = key
        self._timing = timing
        self._limit = limit
        self._data = data
        self._lease: Lease | None = None
        self._task_group: TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None

    async def __aenter__(self) -> Lease:
        if self._lease is not None:
            raise LeaseConfigError("a manager.lease(...) block cannot be entered twice")
        manager = self._manager
        lease = await manager._acquire(self._key, self._timing, self._limit, self._data)  # noqa: SLF001
        self._lease = lease
        if manager.running:
            # The running manager's scheduler heartbeats it: no task of its own.
            manager._blocks.add(lease)  # noqa: SLF001
            manager._enqueue(lease, first=True)  # noqa: SLF001
        else:
            task_group = anyio.create_task_group()
            try:
                await task_group.__aenter__()
            except BaseException:
                await manager._release_quietly(lease)  # noqa: SLF001
                raise
            task_group.start_soon(manager._heartbeat, lease)  # noqa: SLF001
            self._task_group = task_group
        # The body runs in this scope; its deadline follows the lease's local deadline.
        scope = anyio.CancelScope(deadline=lease._valid_until)  # noqa: SLF001
        scope.__enter__()
        lease._scopes.append(scope)  # noqa: SLF001
        self._scope = scope
        return lease

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lease, scope, task_group = self._lease, self._scope, self._task_group
        assert lease is not None  # noqa: S101
        assert scope is not None  # noqa: S101
        swallowed = bool(scope.__exit__(exc_type, exc, tb))
        lease._scopes.remove(scope)  # noqa: SLF001
        if lease._state is _State.HELD and anyio.current_time() >= lease._valid_until:  # noqa: SLF001
            lease._mark_lost("expired", "its local deadline passed before a refresh succeeded")  # noqa: SLF001
        try:
            if task_group is not None:
                task_group.cancel_scope.cancel()
                await task_group.__aexit__(None, None, None)
        finally:
            self._manager._blocks.discard(lease)  # noqa: SLF001
            try:
                await self._manager._release(lease, UNSET)  # noqa: SLF001
            except LeaseStoreError as error:
                logger.warning("could not release %r on exit: %s", lease.key, error)
        if exc is not None and not swallowed:
            return  # the body's own exception (or an outer cancellation) propagates
        lost = lease._lost  # noqa: SLF001
        if swallowed and lost is None:  # our scope only ever fires on loss or the deadline
            lost = lease._mark_lost("expired", "its local deadline passed")  # noqa: SLF001
        if lost is not None:
            raise lost


# -- module helpers ---------------------------------------------------------------------------


def _new_token() -> str:
    return secrets.token_hex(16)


def _no_answer(operation: str, waited: float) -> LeaseStoreError:
    return LeaseStoreError(
        f"{operation} got no answer within {max(waited, 0.0):.3f} s",
        operation=operation,
        transient=True,
        maybe_applied=True,
    )


def _check_client(client: object) -> None:
    meta = getattr(client, "meta", None)
    service = getattr(getattr(meta, "service_model", None), "service_name", None)
    if service != "dynamodb":
        raise LeaseConfigError(
            "client must be an aiobotocore or aioboto3 DynamoDB client, as yielded by "
            "`async with session.create_client('dynamodb')`; got "
            + (f"a client for {service!r}" if service else f"{type(client).__name__}")
        )


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise LeaseConfigError(f"key must be a string, got {type(key).__name__} {key!r}")
    if not key:
        raise LeaseConfigError("key must not be empty")
    size = _utf8_size(key, name="key")
    if size > _MAX_KEY_BYTES:
        raise LeaseConfigError(
            f"key is {size} bytes in UTF-8; DynamoDB allows at most {_MAX_KEY_BYTES}: "
            "use a shorter key (for example a hash of the long one)"
        )


def _utf8_size(text: str, *, name: str) -> int:
    """The size of `text` in UTF-8, or `LeaseConfigError` if it is not valid Unicode.

    A lone surrogate (a code point U+D800 to U+DFFF on its own, left by decoding bytes with
    ``surrogateescape``) has no UTF-8 form: DynamoDB rejects it or maps different such
    strings to one, so it is refused here.
    """
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise LeaseConfigError(
            f"{name} is not valid Unicode text: it has a lone surrogate "
            f"{text[error.start]!r} at index {error.start}; DynamoDB stores text as UTF-8, "
            "so pass real characters (decode bytes strictly, or with errors='replace')"
        ) from None


def _check_callable(**given: object) -> None:
    for name, value in given.items():
        if not callable(value):
            raise LeaseConfigError(f"{name} must be callable, got {value!r}")


def _check_lease(lease: object) -> None:
    if not isinstance(lease, Lease):
        raise LeaseConfigError(
            f"expected a Lease from acquire() or lease(), got {type(lease).__name__}"
        )


def _encode_data(data: object) -> DataUpdate:
    if isinstance(data, _Unset) or data is None:
        return data
    try:
        text = json.dumps(data, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise LeaseConfigError(
            f"data must be JSON-serialisable (no NaN or infinity): {error}"
        ) from error
    size = _utf8_size(text, name="data")
    if size > _MAX_DATA_BYTES:
        raise LeaseConfigError(
            f"data is {size} bytes as JSON; at most {_MAX_DATA_BYTES} are allowed (an acquire "
            "keeps the previous data beside it until the grant is settled, and both must fit "
            "in one DynamoDB item): store a reference (for example an S3 key) instead"
        )
    return text


def _info(record: Record) -> LeaseInfo:
    return LeaseInfo(
        key=record.key,
        owner=record.owner or "",
        fence=record.fence or 0,
        expires_at=utc_from_ms(record.expires_at_ms or 0),
        data=decode_data(record.data),
    )


class _Unreadable:
    """The item could not be read back after a failed condition."""


UNREADABLE: Final = _Unreadable()


def _why_lost(record: Record | _Unreadable | None, token: str) -> tuple[LostReason, str]:
    if isinstance(record, _Unreadable):
        return "taken", "its token condition failed (the record could not be read back)"
    if record is None:
        return "deleted", "its item is gone (deleted by hand or by TTL) or could not be read"
    if record.token is None:
        return "released", "the record shows no holder (released elsewhere or broken)"
    if record.token != token:
        return "taken", f"{record.owner!r} holds it now (fence {record.fence})"
    return "taken", "the record changed under us"
