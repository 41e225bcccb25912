"""What a holder sees of its lease, and what anyone sees of a held key."""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import anyio

from ._exceptions import LeaseError, LeaseLostError, LostReason

if TYPE_CHECKING:
    from ._timing import Timing
    from .store import Record

__all__ = ["Lease", "LeaseInfo"]

logger = logging.getLogger("aiolease")


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A held lease as stored: who holds `key`, its fence, until when, and its data.

    `expires_at` is the holder's wall clock at its last write plus the ttl (timezone-aware
    UTC); other hosts may take over `max_clock_skew` after it by their own clocks.
    """

    key: str
    owner: str
    fence: int
    expires_at: datetime
    data: Any

    @classmethod
    def of(cls, record: Record) -> LeaseInfo:
        """What `record` shows of its lease."""
        return cls(
            key=record.key,
            owner=record.owner or "",
            fence=record.fence or 0,
            expires_at=utc_from_ms(record.expires_at_ms or 0),
            data=decode_data(record.data),
        )


class _State(enum.Enum):
    HELD = "held"
    RELEASING = "releasing"  # a release has started: no longer held, not yet settled
    RELEASED = "released"
    LOST = "lost"


_EARLIEST: Final = datetime.min.replace(tzinfo=UTC)
_LATEST: Final = datetime.max.replace(tzinfo=UTC)


def utc_from_ms(ms: int) -> datetime:
    """Epoch milliseconds to an aware UTC datetime, held to the range datetime can show.

    A stored expiry beyond year 9999 (another writer's, or an absurd ttl of an older
    version) reads as the latest datetime instead of crashing every reader.
    """
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return _LATEST if ms > 0 else _EARLIEST


def decode_data(raw: str | None) -> Any:
    """The stored JSON text as a Python value (None when absent).

    Text that is not JSON (stored by another writer) is returned as the text itself.
    """
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read
        logger.warning("stored data is not JSON that can be read; returned as its text")
        return raw


class Lease:
    """A lease this process holds on `key`, valid until its local deadline.

    The local deadline is measured on the monotonic clock from the send time of the write
    that is in force, minus the safety margin, so it ends before any other host may take
    the key over. Check `remaining` or call `ensure_held()` right before each side effect,
    and pass `fence` to the protected resource so it can reject stale holders.
    """

    __slots__ = (
        "_deadline",
        "_granted_at",
        "_heartbeat_scope",
        "_last_failure",
        "_last_sent",
        "_lost",
        "_on_lost",
        "_scopes",
        "_sequence",
        "_settled",
        "_state",
        "_store_released",
        "_suspended",
        "_suspended_base",
        "_timing",
        "_write_lock",
        "data",
        "expires_at",
        "fence",
        "key",
        "owner",
        "token",
        "ttl",
    )

    def __init__(
        self,
        *,
        record: Record,
        timing: Timing,
        sent_at: float,
        suspended: Callable[[], float],
        suspended_at_send: float,
    ) -> None:
        assert record.token is not None  # noqa: S101  (granted records always carry a token)
        assert record.fence is not None  # noqa: S101
        self.key: str = record.key
        self.owner: str = record.owner or ""
        self.token: str = record.token
        self.fence: int = record.fence
        self.ttl: float = timing.ttl
        self.data: Any = decode_data(record.data)
        self.expires_at: datetime = utc_from_ms(record.expires_at_ms or 0)
        # Order of this holder's writes: the store refuses one older than the last applied.
        self._sequence = record.sequence or 0
        self._timing = timing
        self._suspended = suspended
        self._count_from(sent_at, suspended_at_send)
        self._state = _State.HELD
        self._store_released = False  # a release of ours has settled in the store
        self._lost: LeaseLostError | None = None
        self._last_failure: LeaseError | None = None  # the latest failed refresh, for context
        # Made on first use: most leases never need them, and thousands may be held.
        self._settled: anyio.Event | None = None
        self._write_lock: anyio.Lock | None = None
        self._heartbeat_scope: anyio.CancelScope | None = None
        self._scopes: list[anyio.CancelScope] = []
        self._granted_at = anyio.current_time()
        # Told once when the lease is lost (the manager's event hooks).
        self._on_lost: Callable[[Lease, LeaseLostError], None] | None = None

    def __repr__(self) -> str:
        return (
            f"<Lease key={self.key!r} owner={self.owner!r} fence={self.fence} "
            f"state={self._state.value} remaining={self.remaining:.3f}>"
        )

    @property
    def held(self) -> bool:
        """True until a release starts or the lease is lost, and inside the local deadline."""
        return self._state is _State.HELD and anyio.current_time() < self._valid_until

    @property
    def remaining(self) -> float:
        """Seconds of local validity left (monotonic clock, safety margin deducted); 0 when gone."""
        if self._state is not _State.HELD:
            return 0.0
        return max(0.0, self._valid_until - anyio.current_time())

    @property
    def lost(self) -> LeaseLostError | None:
        """Why the lease was lost, or None."""
        return self._lost

    def ensure_held(self) -> None:
        """Raise `LeaseLostError` unless the lease is held and inside its local deadline."""
        self._expire_if_due()
        if self._lost is not None:
            raise self._lost
        if self._state is not _State.HELD:
            raise self._released_error()

    async def wait_lost(self) -> LeaseLostError:
        """Wait until the lease is lost or released and return why.

        Returns at the latest at the local deadline, whether or not a heartbeat runs (after
        a host suspend, within a heartbeat interval of the resume: the timer runs on the
        monotonic clock, which stood still meanwhile).
        """
        while self._active():
            if self._settled is None:
                self._settled = anyio.Event()
            left = max(0.0, self._valid_until - anyio.current_time())
            with anyio.move_on_after(min(left, self._timing.heartbeat_interval)):
                await self._settled.wait()
            self._expire_if_due()
        if self._lost is not None:
            return self._lost
        return self._released_error()

    # -- used by the manager ----------------------------------------------------------

    def _released_error(self) -> LeaseLostError:
        done = "is being released" if self._state is _State.RELEASING else "was released"
        return LeaseLostError(
            f"lease {self.key!r} (fence {self.fence}) {done}",
            key=self.key,
            fence=self.fence,
            reason="released",
        )

    def _expire_if_due(
        self, detail: str = "its local deadline passed without a successful refresh"
    ) -> None:
        """The expiry check: a lease still held at its local deadline is lost now."""
        if self._state is _State.HELD and anyio.current_time() >= self._valid_until:
            self._mark_expired(detail)

    def _mark_expired(self, detail: str) -> LeaseLostError:
        """Lost to the local deadline; the last store failure, if any, is named as the cause."""
        failure = self._last_failure
        if failure is not None:
            detail = f"{detail}; the store failed: {failure}"
        lost = self._mark_lost("expired", detail)
        if failure is not None and lost.__cause__ is None:
            lost.__cause__ = failure
        return lost

    def _active(self) -> bool:
        """Neither released nor lost (the local deadline is not considered)."""
        return self._state is _State.HELD

    def _settled_in_store(self) -> bool:
        """Nothing of ours can be left on the item: released, or the store showed another state.

        A lease lost only to its local deadline may still stand in the store (a refresh
        answered too late applied), so it still needs its release.
        """
        if self._store_released:
            return True
        return self._lost is not None and self._lost.reason != "expired"

    def _writes(self) -> anyio.Lock:
        """The lock that keeps this lease's refreshes and its release one at a time."""
        if self._write_lock is None:
            self._write_lock = anyio.Lock(fast_acquire=True)
        return self._write_lock

    @property
    def _valid_until(self) -> float:
        """The local deadline on the monotonic clock, less any time the host was suspended."""
        return self._deadline - max(0.0, self._suspended() - self._suspended_base)

    def _count_from(self, sent_at: float, suspended_at_send: float) -> None:
        """Validity counts from the send of the write in force (`Timing.deadline`).

        The deadline is on the monotonic clock, which stands still while the host is
        suspended: the time suspended since the send is taken off (`_valid_until`).
        """
        self._last_sent = sent_at
        self._deadline = self._timing.deadline(sent_at)
        self._suspended_base = suspended_at_send

    def _renewed(
        self, record: Record, *, sent_at: float, suspended_at_send: float, sequence: int
    ) -> None:
        self._sequence = sequence
        self._last_failure = None  # the failures before this refresh are over
        self._count_from(sent_at, suspended_at_send)
        if record.expires_at_ms is not None:
            self.expires_at = utc_from_ms(record.expires_at_ms)
        self.data = decode_data(record.data)
        for scope in self._scopes:
            scope.deadline = self._valid_until

    def _mark_lost(self, reason: LostReason, detail: str) -> LeaseLostError:
        if self._lost is None and self._state is _State.HELD:
            self._lost = LeaseLostError(
                f"lease {self.key!r} (fence {self.fence}) was lost: {detail}",
                key=self.key,
                fence=self.fence,
                reason=reason,
            )
            self._state = _State.LOST
            self._settle(cancel_body=True)
            if self._on_lost is not None:
                self._on_lost(self, self._lost)
        return self._lost or LeaseLostError(
            f"lease {self.key!r} (fence {self.fence}) is no longer held",
            key=self.key,
            fence=self.fence,
            reason=reason,
        )

    def _mark_releasing(self) -> None:
        """A release has started: from now on the holder's view is "not held"."""
        if self._state is _State.HELD:
            self._state = _State.RELEASING
            self._settle(cancel_body=False)

    def _mark_released(self) -> None:
        self._store_released = True
        if self._state in {_State.HELD, _State.RELEASING}:
            self._state = _State.RELEASED
            self._settle(cancel_body=False)

    def _settle(self, *, cancel_body: bool) -> None:
        if self._settled is not None:
            self._settled.set()
        if self._heartbeat_scope is not None:
            self._heartbeat_scope.cancel()
        if cancel_body:
            for scope in self._scopes:
                scope.cancel()
