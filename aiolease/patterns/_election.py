"""Leader election: campaign for a key, lead while holding it, step down, campaign again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NoReturn

import anyio

from aiolease import Lease, LeaseHeldError, LeaseLostError, LeaseManager, LeaseStoreError

from ._common import (
    POLL_INTERVAL,
    TTL,
    Duration,
    check_callable,
    check_key,
    check_manager,
    lease_unless_held,
    logger,
    optional_seconds,
    run_bounded,
)

__all__ = ["LeaderElection"]

_MIN_PAUSE = 0.01


class LeaderElection:
    """Campaign for `key`; while holding its lease, run `on_started_leading(lease)`.

    ``await election.run()`` runs until cancelled (or a hook raises):

    1. Campaign: try the lease every `retry_period` seconds (default: the manager's
       `poll_interval`). Each time the holder seen changes, `on_new_leader(owner)` is
       awaited (also with this manager's own `owner` when it wins).
    2. Lead: `on_started_leading(lease)` runs while the lease is held and heartbeated;
       pass `lease.fence` to whatever the leader writes to. If it returns, leadership
       continues until the lease is lost or `run()` is cancelled.
    3. Step down: when the lease is lost (taken over, broken, or not refreshed in time)
       `on_started_leading` is cancelled, the lease is released and
       `on_stopped_leading()` is awaited; then the campaign starts again. When `run()` is
       cancelled, the lease is released, `on_stopped_leading()` runs (shielded, at most
       the manager's `release_timeout`), and the cancellation propagates.

    A transient store failure while campaigning is logged and retried after
    `retry_period`; other store errors propagate. An exception from `on_started_leading`
    ends the term the same way, then propagates out of `run()`; one from
    `on_stopped_leading` is logged.

    The hooks mirror Kubernetes' ``OnStartedLeading``, ``OnStoppedLeading`` and
    ``OnNewLeader``; all three are coroutine functions.
    """

    def __init__(
        self,
        manager: LeaseManager,
        key: str,
        *,
        on_started_leading: Callable[[Lease], Awaitable[object]],
        on_stopped_leading: Callable[[], Awaitable[object]] | None = None,
        on_new_leader: Callable[[str], Awaitable[object]] | None = None,
        ttl: Duration | None = None,
        retry_period: Duration | None = None,
    ) -> None:
        self._manager = check_manager(manager)
        self.key = check_key(key)
        check_callable(on_started_leading=on_started_leading)
        hooks = {"on_stopped_leading": on_stopped_leading, "on_new_leader": on_new_leader}
        check_callable(**{name: hook for name, hook in hooks.items() if hook is not None})
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._ttl = optional_seconds(ttl, name="ttl", bounds=TTL)
        period = optional_seconds(retry_period, name="retry_period", bounds=POLL_INTERVAL)
        self._retry_period = manager.poll_interval if period is None else period
        self._leader: str | None = None
        self._lease: Lease | None = None
        self._running = False
        manager._timing(self._ttl)  # the ttl must fit the manager's timings: refused now

    @property
    def leader(self) -> str | None:
        """The owner last seen holding the key (this manager's owner while leading)."""
        return self._leader

    @property
    def is_leader(self) -> bool:
        """True while this candidate holds the lease."""
        return self._lease is not None and self._lease.held

    @property
    def lease(self) -> Lease | None:
        """The current term's lease, or None when not leading."""
        return self._lease

    async def run(self) -> NoReturn:
        """Campaign, lead and step down repeatedly until cancelled; see the class."""
        if self._running:
            raise RuntimeError("this LeaderElection is already running")
        self._running = True
        try:
            while True:
                await self._term()
        finally:
            self._running = False

    async def _term(self) -> None:
        """One campaign attempt; if won, lead until the term ends."""
        manager = self._manager
        lease: Lease | None = None
        try:
            async with lease_unless_held(manager, self.key, ttl=self._ttl, timeout=0) as won:
                if isinstance(won, LeaseHeldError):
                    await self._observe(won.owner)
                    await anyio.sleep(max(min(won.retry_after, self._retry_period), _MIN_PAUSE))
                    return
                lease = self._lease = won
                await self._observe(manager.owner)
                logger.info("%r: %r is leader (fence %d)", self.key, manager.owner, lease.fence)
                await self._on_started(lease)
                await lease.wait_lost()
        except LeaseStoreError as error:
            if lease is not None or not error.transient:
                raise
            logger.warning("%r: campaign attempt failed, retrying: %s", self.key, error)
            await anyio.sleep(self._retry_period)
        except LeaseLostError as lost:
            if lease is None or lost.key != self.key or lost.fence != lease.fence:
                raise  # not this term's lease
            logger.warning("%r: leadership lost (%s)", self.key, lost.reason)
        finally:
            if lease is not None:
                await self._stepped_down()

    async def _stepped_down(self) -> None:
        self._lease = None
        if self._leader == self._manager.owner:
            self._leader = None
        if self._on_stopped is not None:
            await run_bounded(
                self._on_stopped,
                timeout=self._manager.release_timeout,
                what=f"on_stopped_leading for {self.key!r}",
            )

    async def _observe(self, owner: str | None) -> None:
        if owner is None or owner == self._leader:
            return
        self._leader = owner
        if self._on_new_leader is not None:
            await self._on_new_leader(owner)
