"""`LeaseManager`: the public face of the lease engine.

It validates its options, builds the engine the other modules share (`_engine.Engine`)
and keeps each public method short: acquiring lives in `_acquiring`, refreshing in
`_refreshing`, heartbeats in `_heartbeats`, releasing in `_releasing`, the undo in
`_undo`, and the ``lease()`` block in `_block`.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self, overload

from ._acquiring import acquire
from ._block import LeaseBlock
from ._clocks import Clocks, suspend_aware_clock
from ._durations import (
    ACQUIRE_TIMEOUT,
    BACKOFF,
    HEARTBEAT_INTERVAL,
    MAX_CLOCK_SKEW,
    POLL_INTERVAL,
    RELEASE_TIMEOUT,
    SAFETY_MARGIN,
    TTL,
    Duration,
    optional_seconds,
    seconds,
)
from ._engine import Engine
from ._events import Events, LeaseEvent
from ._exceptions import LeaseConfigError
from ._heartbeats import Heartbeats
from ._lease import Lease, LeaseInfo
from ._pacing import Pacing
from ._refreshing import renew
from ._releasing import release
from ._stores import store_for
from ._timing import Timing
from ._validation import check_callable, check_key, check_lease, encode_data, utf8_size
from .dynamodb import DynamoDBClient
from .store import UNSET, Record, Store

__all__ = ["LeaseManager", "check_manager"]


class LeaseManager:
    """Acquire, refresh and release leases on keys of one lease store.

    ``LeaseManager(client, "leases", ...)`` keeps its leases in the DynamoDB table
    ``leases`` through `client`, an aiobotocore or aioboto3 DynamoDB client that stays
    yours to open and close (see `create_table()`); ``LeaseManager(store, ...)`` uses any
    `aiolease.store.Store`, such as `aiolease.dynamodb.DynamoDBStore` or
    `aiolease.testing.MemoryStore`. Options:

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
    - With a client and a table only, the options of `DynamoDBStore`: `attribute_names`
      renames item attributes by role (``key``, ``owner``, ``token``, ``version``,
      ``fence``, ``expires_at``, ``duration``, ``data``, ``data_before``, ``sequence``,
      ``released``, ``released_before``, ``revoked``, ``ttl``); `sort_key` is
      ``(attribute, value)`` for tables with a sort key: every lease item uses this fixed
      value; `ttl_buffer` is how long after expiry DynamoDB TTL may delete an item (one day).
    - `wall_clock`: epoch seconds (``time.time``), and `token_factory`: new unique tokens.
    - `suspend_clock`: seconds on a monotonic clock that counts time the host was suspended
      (Linux ``CLOCK_BOOTTIME``): a holder's validity shrinks by the time it slept.
    - `rng`: the `random.Random` all jitter (polls, backoff, first heartbeats) is drawn
      from; seed it for a repeatable run. Local deadlines run on the event loop's clock.
    - `hooks`: callables given a `LeaseEvent` for every acquire, contention, wait, refresh,
      failed refresh, loss and release (for metrics and tracing; exceptions are logged).

    `store` is the store in use and `table` its table's name.

    Use `async with manager:` to have leases from `acquire()` heartbeated until released;
    leases from `lease()` are always heartbeated. Inside a running manager one scheduler
    task serves every held lease (a sleeping lease costs no task), and a `lease()` block
    still running when the manager stops is stopped (`LeaseLostError`) and released.
    """

    @overload
    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        attribute_names: Mapping[str, str] | None = None,
        sort_key: tuple[str, str] | None = None,
        ttl_buffer: Duration | None = None,
        owner: str | None = None,
        default_ttl: Duration = 30.0,
        heartbeat_interval: Duration | None = None,
        safety_margin: Duration | None = None,
        max_clock_skew: Duration = 1.0,
        poll_interval: Duration = 1.0,
        backoff: Duration = 1.0,
        release_timeout: Duration = 5.0,
        wall_clock: Callable[[], float] = time.time,
        suspend_clock: Callable[[], float] = suspend_aware_clock,
        token_factory: Callable[[], str] | None = None,
        rng: random.Random | None = None,
        hooks: Iterable[Callable[[LeaseEvent], object]] = (),
    ) -> None: ...

    @overload
    def __init__(
        self,
        store: Store,
        /,
        *,
        owner: str | None = None,
        default_ttl: Duration = 30.0,
        heartbeat_interval: Duration | None = None,
        safety_margin: Duration | None = None,
        max_clock_skew: Duration = 1.0,
        poll_interval: Duration = 1.0,
        backoff: Duration = 1.0,
        release_timeout: Duration = 5.0,
        wall_clock: Callable[[], float] = time.time,
        suspend_clock: Callable[[], float] = suspend_aware_clock,
        token_factory: Callable[[], str] | None = None,
        rng: random.Random | None = None,
        hooks: Iterable[Callable[[LeaseEvent], object]] = (),
    ) -> None: ...

    def __init__(
        self,
        client: DynamoDBClient | Store,
        table: str | None = None,
        *,
        attribute_names: Mapping[str, str] | None = None,
        sort_key: tuple[str, str] | None = None,
        ttl_buffer: Duration | None = None,
        owner: str | None = None,
        default_ttl: Duration = 30.0,
        heartbeat_interval: Duration | None = None,
        safety_margin: Duration | None = None,
        max_clock_skew: Duration = 1.0,
        poll_interval: Duration = 1.0,
        backoff: Duration = 1.0,
        release_timeout: Duration = 5.0,
        wall_clock: Callable[[], float] = time.time,
        suspend_clock: Callable[[], float] = suspend_aware_clock,
        token_factory: Callable[[], str] | None = None,
        rng: random.Random | None = None,
        hooks: Iterable[Callable[[LeaseEvent], object]] = (),
    ) -> None:
        store = store_for(
            client, table, attribute_names=attribute_names, sort_key=sort_key, ttl_buffer=ttl_buffer
        )
        if owner is None:
            owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        elif not isinstance(owner, str) or not owner:
            raise LeaseConfigError(f"owner must be a non-empty string, got {owner!r}")
        utf8_size(owner, name="owner")
        check_callable(wall_clock=wall_clock, suspend_clock=suspend_clock)
        if token_factory is not None:
            check_callable(token_factory=token_factory)
        if rng is not None and not isinstance(rng, random.Random):
            raise LeaseConfigError(f"rng must be a random.Random, got {rng!r}")
        self.store = store
        self.table = store.table
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
        store.check_options(max_clock_skew=self.max_clock_skew)
        self._engine = Engine(
            store=store,
            owner=owner,
            clocks=Clocks(wall=wall_clock, suspend_aware=suspend_clock),
            pacing=Pacing(
                poll_interval=self.poll_interval,
                backoff=self.backoff,
                rng=rng if rng is not None else random.Random(),  # noqa: S311 (jitter only)
            ),
            events=Events(hooks, owner=owner),
            token_factory=token_factory or _new_token,
            max_clock_skew=self.max_clock_skew,
            release_timeout=self.release_timeout,
        )
        self._heartbeats = Heartbeats(self._engine)
        self._timing(None)  # the defaults must fit together

    def __repr__(self) -> str:
        return f"<LeaseManager table={self.table!r} owner={self.owner!r}>"

    @property
    def running(self) -> bool:
        """True inside ``async with manager:``, where `acquire()` leases are heartbeated."""
        return self._heartbeats.running

    # -- running: heartbeats for acquire() leases ---------------------------------------

    async def __aenter__(self) -> Self:
        self._engine.bind_loop()
        if self._heartbeats.running:
            raise LeaseConfigError("this LeaseManager is already running (async with manager)")
        await self._heartbeats.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._heartbeats.stop()

    # -- the table ------------------------------------------------------------------------

    async def create_table(self) -> bool:
        """Create the lease table if missing, wait until ACTIVE, and enable TTL.

        Idempotent: returns True if it created the table, False if it existed (with a
        usable schema). Uses on-demand billing. TTL is enabled where the server supports it.
        """
        self._engine.bind_loop()
        created = await self._engine.store.create_table()
        self._engine.mark_checked()
        return created

    # -- leases -----------------------------------------------------------------------------

    def lease(
        self,
        key: str,
        *,
        ttl: Duration | None = None,
        timeout: Duration | None = None,
        data: Any = UNSET,
    ) -> LeaseBlock:
        """Hold `key` for the body of an ``async with`` block, heartbeated throughout.

        Waits until the key is free (or `timeout` seconds; 0 tries once). The body is
        cancelled if the lease is lost or its local deadline (minus the safety margin)
        arrives without a successful refresh, and the block then raises `LeaseLostError`.
        On exit the lease is released, shielded from cancellation and bounded in time.
        """
        check_key(key)
        timing = self._timing(ttl)
        limit = optional_seconds(timeout, name="timeout", bounds=ACQUIRE_TIMEOUT)
        return LeaseBlock(
            self._engine,
            self._heartbeats,
            key,
            timing=timing,
            limit=limit,
            data=encode_data(data),
        )

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
        check_key(key)
        timing = self._timing(ttl)
        limit = optional_seconds(timeout, name="timeout", bounds=ACQUIRE_TIMEOUT)
        lease = await acquire(self._engine, key, timing, limit, encode_data(data))
        if self._heartbeats.running:
            self._heartbeats.track(lease)
        return lease

    async def refresh(self, lease: Lease, *, data: Any = UNSET) -> None:
        """Extend `lease` by its ttl from now (and replace its data if given).

        Retries transient failures until the local deadline. Raises `LeaseLostError` when
        the lease is no longer ours or its local deadline passed; never re-takes a key.
        """
        self._engine.bind_loop()
        check_lease(lease)
        payload = encode_data(data)
        lease.ensure_held()
        async with lease._writes():
            lease.ensure_held()
            await renew(self._engine, lease, payload, retry_permanent=False)

    async def release(self, lease: Lease, *, data: Any = UNSET) -> bool:
        """Give `lease` up; return False if it was no longer ours or is already released.

        From the moment it starts the lease is no longer held (`held` is False). Stops its
        heartbeat, then clears the holder with one token-conditioned write that keeps the
        fence (and the data, unless `data` is given). Shielded from cancellation and bounded
        by `release_timeout`; raises `LeaseStoreError` if it could not complete, and can then
        be called again to finish. Of concurrent calls, one does the work; the others
        return False.
        """
        check_lease(lease)
        try:
            return await release(self._engine, lease, encode_data(data))
        finally:
            self._heartbeats.forget_if_settled(lease)

    async def break_lease(self, key: str) -> LeaseInfo | None:
        """Force-release `key` whoever holds it (an operator's tool); return who held it.

        Reads the holder, then clears exactly that grant (its token and fence): a break the
        SDK re-sends never breaks the next holder. Returns None if nobody held the key, or if
        the holder it found let go before the break landed. The fence is kept, so the
        next holder's fence is still higher. The former holder finds out at its next
        refresh (reason ``"released"``).
        """
        engine = self._engine
        engine.bind_loop()
        check_key(key)
        await engine.ensure_checked()
        found = await engine.store.get(key, now=engine.now())
        if found is None or found.token is None:
            return None
        marker = f"!broken:{engine.new_token()}"
        outcome = await engine.store.break_lease(
            key, token=found.token, fence=found.fence, marker=marker, now=engine.now()
        )
        if outcome.applied:
            return LeaseInfo.of(outcome.record or found)
        # Refused: our marker on the item means an earlier send of this break applied.
        after = outcome.record or await engine.read_back(key)
        ours = isinstance(after, Record) and marker in {after.released, after.released_before}
        return LeaseInfo.of(found) if ours else None

    async def get(self, key: str) -> LeaseInfo | None:
        """Who holds `key` now (strongly consistent read), or None if nobody does."""
        engine = self._engine
        engine.bind_loop()
        check_key(key)
        await engine.ensure_checked()
        record = await engine.store.get(key, now=engine.now())
        return LeaseInfo.of(record) if record is not None and record.held else None

    async def list(self, prefix: str = "") -> AsyncIterator[LeaseInfo]:
        """The held leases whose key starts with `prefix`, page by page.

        On DynamoDB each page is a consistent Scan.
        """
        engine = self._engine
        engine.bind_loop()
        if not isinstance(prefix, str):
            raise LeaseConfigError(f"prefix must be a string, got {prefix!r}")
        utf8_size(prefix, name="prefix")
        await engine.ensure_checked()
        cursor: Any = None
        while True:
            page = await engine.store.list_page(prefix, cursor=cursor, now=engine.now())
            for record in page.records:
                if record.held:
                    yield LeaseInfo.of(record)
            if page.cursor is None:
                return
            cursor = page.cursor

    # -- helpers --------------------------------------------------------------------------

    def _timing(self, ttl: Duration | None) -> Timing:
        """The timing of a lease of `ttl` under this manager's options (validated)."""
        return Timing.of(
            ttl,
            default_ttl=self.default_ttl,
            heartbeat_interval=self.heartbeat_interval,
            safety_margin=self.safety_margin,
        )


def check_manager(manager: object) -> LeaseManager:
    """`manager` if it is a `LeaseManager`, else `LeaseConfigError`."""
    if not isinstance(manager, LeaseManager):
        raise LeaseConfigError(f"expected a LeaseManager, got {type(manager).__name__}")
    return manager


def _new_token() -> str:
    return secrets.token_hex(16)
