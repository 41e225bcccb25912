"""Single-flight: one caller across the fleet does the work, the others are told who."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

import anyio

from aiolease import Lease, LeaseHeldError, LeaseManager

from ._common import (
    TTL,
    Duration,
    check_callable,
    check_key,
    check_manager,
    lease_unless_held,
    logger,
    optional_seconds,
)

__all__ = ["Busy", "Regenerated", "SingleFlight", "single_flight"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Regenerated(Generic[T]):
    """The lease on `key` was won here and the work ran: its `value`, under `fence`."""

    key: str
    value: T
    fence: int


@dataclass(frozen=True, slots=True)
class Busy:
    """Someone else holds `key`: serve what you have and try again in `retry_after` s.

    `owner` and `expires_at` are the holder's as stored (None if its record was
    unreadable); `retry_after` is how long until the key may be taken over if the holder
    stops refreshing it (it is usually free earlier: when the holder finishes).
    """

    key: str
    owner: str | None
    expires_at: datetime | None
    retry_after: float


async def _attempt(
    manager: LeaseManager,
    key: str,
    fn: Callable[[Lease], Awaitable[T]],
    ttl: float | None,
) -> Regenerated[T] | Busy:
    async with lease_unless_held(manager, key, ttl=ttl, timeout=0) as lease:
        if isinstance(lease, LeaseHeldError):
            logger.debug("single-flight %r: held by %r", key, lease.owner)
            return Busy(
                key=key,
                owner=lease.owner,
                expires_at=lease.expires_at,
                retry_after=lease.retry_after,
            )
        value = await fn(lease)
        # The body is cancelled if the lease is lost, so reaching here means it was held.
        return Regenerated(key=key, value=value, fence=lease.fence)


async def single_flight(
    manager: LeaseManager,
    key: str,
    fn: Callable[[Lease], Awaitable[T]],
    *,
    ttl: Duration | None = None,
) -> Regenerated[T] | Busy:
    """Try the lease on `key` once; if won, run ``await fn(lease)`` under it.

    Returns `Regenerated` (the value and the lease's fence) when this caller did the
    work, or `Busy` (who holds the key, and when to retry) when someone else holds it.
    `fn` is cancelled if the lease is lost, and `LeaseLostError` is raised; exceptions
    from `fn` and `LeaseStoreError` propagate. The lease is released when `fn` returns.
    """
    check_manager(manager)
    check_key(key)
    check_callable(fn=fn)
    return await _attempt(manager, key, fn, optional_seconds(ttl, name="ttl", bounds=TTL))


class _Flight(Generic[T]):
    """One attempt that concurrent callers in this process share."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.outcome: Regenerated[T] | Busy | None = None
        self.error: Exception | None = None


class SingleFlight:
    """Single-flight work per key, across the fleet and, coalesced, within this process.

    ``await flight.run(key, fn)`` tries the lease on `key` once (``timeout=0``). The
    winner runs ``await fn(lease)`` under the lease and gets `Regenerated`; the others
    get `Busy`, saying who holds the key and when to retry. With `coalesce` (the default),
    concurrent calls in this process for the same key share one attempt: one DynamoDB
    request, at most one `fn` run, and every caller gets the same outcome (or exception);
    the `fn` of the callers who joined is not run. If the caller running the shared
    attempt is cancelled, the callers waiting on it start a new one.
    """

    def __init__(
        self, manager: LeaseManager, *, ttl: Duration | None = None, coalesce: bool = True
    ) -> None:
        self._manager = check_manager(manager)
        self._ttl = optional_seconds(ttl, name="ttl", bounds=TTL)
        self._coalesce = bool(coalesce)
        self._flights: dict[str, _Flight[object]] = {}

    @property
    def in_flight(self) -> frozenset[str]:
        """The keys with an attempt under way in this process (coalescing only)."""
        return frozenset(self._flights)

    async def run(self, key: str, fn: Callable[[Lease], Awaitable[T]]) -> Regenerated[T] | Busy:
        """Run `fn` under the lease on `key` if won; see the class description."""
        check_key(key)
        check_callable(fn=fn)
        if not self._coalesce:
            return await _attempt(self._manager, key, fn, self._ttl)
        while True:
            flight = self._flights.get(key)
            if flight is None:
                return await self._lead(key, fn)
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.outcome is not None:
                return flight.outcome  # type: ignore[return-value]
            # The caller running it was cancelled: take over with a new attempt.

    async def _lead(self, key: str, fn: Callable[[Lease], Awaitable[T]]) -> Regenerated[T] | Busy:
        flight: _Flight[T] = _Flight()
        self._flights[key] = flight  # type: ignore[assignment]
        try:
            outcome = await _attempt(self._manager, key, fn, self._ttl)
        except Exception as error:
            flight.error = error
            raise
        else:
            flight.outcome = outcome
            return outcome
        finally:
            del self._flights[key]
            flight.done.set()
