"""What the parts of the lease engine share: one `Engine` per manager.

Acquiring, refreshing, heartbeats and releasing each live in a module of their own and
take the engine as their first argument: the store, this holder's name, its clocks, its
waiting policy, its event hooks and the few options the rules need. The manager builds
it once and stays the public face.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable

import anyio

from ._clocks import Clocks
from ._events import Events
from ._exceptions import LeaseConfigError, LeaseLostError, LeaseStoreError
from ._lease import Lease
from ._pacing import Pacing
from ._validation import utf8_size
from .store import Now, Record, Store

__all__ = ["Engine", "Unreadable"]

logger = logging.getLogger("aiolease")


class Unreadable:
    """The item could not be read back after a failed condition; `error` says why."""

    __slots__ = ("error",)

    def __init__(self, error: LeaseStoreError) -> None:
        self.error = error


class Engine:
    """The store and the settings that every lease operation of one manager uses."""

    __slots__ = (
        "_check_lock",
        "_checked",
        "_loop",
        "_token_factory",
        "clocks",
        "events",
        "max_clock_skew",
        "owner",
        "pacing",
        "release_timeout",
        "store",
    )

    def __init__(
        self,
        *,
        store: Store,
        owner: str,
        clocks: Clocks,
        pacing: Pacing,
        events: Events,
        token_factory: Callable[[], str],
        max_clock_skew: float,
        release_timeout: float,
    ) -> None:
        self.store = store
        self.owner = owner
        self.clocks = clocks
        self.pacing = pacing
        self.events = events
        self.max_clock_skew = max_clock_skew
        self.release_timeout = release_timeout
        self._token_factory = token_factory
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None  # set on first use
        self._checked = False
        self._check_lock: anyio.Lock | None = None

    def now(self) -> Now:
        """The wall-clock reading the store is given with a request sent now."""
        return Now(self.clocks.wall(), self.max_clock_skew)

    def new_token(self) -> str:
        """A fresh unique token (for a grant, a record version or a marker)."""
        token = self._token_factory()
        if not isinstance(token, str) or not token:
            raise LeaseConfigError(f"token_factory must return a non-empty string, got {token!r}")
        utf8_size(token, name="a token from token_factory")
        return token

    def bind_loop(self) -> None:
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

    @property
    def checked(self) -> bool:
        """Whether the table has been checked (or created) by this manager."""
        return self._checked

    def mark_checked(self) -> None:
        self._checked = True

    async def ensure_checked(self) -> None:
        """Check the table once, before the first operation that depends on its schema."""
        if self._checked:
            return
        if self._check_lock is None:
            self._check_lock = anyio.Lock()
        async with self._check_lock:
            if not self._checked:
                await self.store.check_table()
                self._checked = True

    def tell_lost(self, lease: Lease, lost: LeaseLostError) -> None:
        """Tell the hooks of a lease that was lost (a lease's `_on_lost`)."""
        self.events.emit("lost", lease.key, fence=lease.fence, reason=lost.reason)

    async def read_back(self, key: str) -> Record | Unreadable | None:
        """The item for `key`, for servers that do not return it on a failed condition."""
        try:
            return await self.store.get(key, now=self.now())
        except LeaseStoreError as error:
            logger.info("could not read %r after a failed condition: %s", key, error)
            return Unreadable(error)
