"""Heartbeats (design.md §6): who refreshes each held lease, and when.

A running manager has one `Heartbeats` scheduler: a heap of due times served by one
task, which starts each due beat in a task of its own, so a sleeping lease costs a heap
entry instead of a task and a slow refresh never delays the others. A ``lease()`` block
outside a running manager heartbeats in a loop of its own (`heartbeat`). Either way one
beat is `beat`, run inside the lease's heartbeat scope (`heartbeat_scope`), which a
release or a loss cancels.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from ._engine import Engine
from ._exceptions import LeaseLostError
from ._lease import Lease
from ._refreshing import renew
from ._releasing import release_quietly
from .store import UNSET

__all__ = ["Heartbeats", "beat", "heartbeat"]

logger = logging.getLogger("aiolease")

# Heartbeats due this soon after the scheduler wakes are started with those due now: a
# refresh a few milliseconds early costs nothing, a wake-up per lease costs CPU.
_GRAIN: Final = 0.01
# The most heartbeats the scheduler starts before letting the loop run them (and the
# application's own tasks) when many fall due at once.
_BATCH: Final = 16


@contextmanager
def heartbeat_scope(lease: Lease) -> Iterator[None]:
    """Run a heartbeat of `lease` in a scope that its release or loss cancels."""
    with anyio.CancelScope() as scope:
        lease._heartbeat_scope = scope
        try:
            yield
        finally:
            lease._heartbeat_scope = None


async def beat(engine: Engine, lease: Lease) -> None:
    """One heartbeat: refresh `lease` unless it is over; a failure ends the lease."""
    try:
        async with lease._writes():
            if lease._active():
                await renew(engine, lease, UNSET, retry_permanent=True)
    except LeaseLostError as lost:
        logger.warning("%s", lost, extra={"aiolease_event": "lost"})
    except Exception as error:  # a bug must not leave the holder running unnoticed
        logger.exception("heartbeat of %r failed", lease.key)
        lease._mark_lost("expired", f"its heartbeat failed: {error!r}")


async def heartbeat(engine: Engine, lease: Lease) -> None:
    """Refresh `lease` every heartbeat interval until it is released or lost.

    The heartbeat of a ``lease()`` block outside a running manager, in the block's own
    task group.
    """
    with heartbeat_scope(lease):
        while lease._active():
            await anyio.sleep_until(lease._last_sent + lease._timing.heartbeat_interval)
            await beat(engine, lease)


class Heartbeats:
    """The scheduler of a running manager: one task serving every held lease's heartbeat.

    It owns the heap of due beats (entries are the due time, a tie-breaker, the lease and
    the lease's last send time when planned), the event that wakes it for an entry earlier
    than it sleeps for, the leases of `acquire()` it keeps alive until released (tracked),
    and the leases of ``lease()`` blocks it heartbeats.
    """

    __slots__ = ("_blocks", "_due", "_engine", "_order", "_task_group", "_tracked", "_wake")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._task_group: TaskGroup | None = None
        self._due: list[tuple[float, int, Lease, float]] = []
        self._order = itertools.count()
        self._wake: anyio.Event | None = None
        self._tracked: set[Lease] = set()
        self._blocks: set[Lease] = set()

    @property
    def running(self) -> bool:
        return self._task_group is not None

    async def start(self) -> None:
        """Start serving heartbeats (entering ``async with manager``)."""
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        task_group.start_soon(self._serve)

    async def stop(self) -> None:
        """Stop: the blocks it heartbeats are stopped, tracked leases released."""
        task_group = self._task_group
        assert task_group is not None  # noqa: S101
        try:
            for lease in list(self._blocks):
                # Nothing will heartbeat it any more: its block must stop now.
                lease._mark_lost("expired", "its manager stopped running")
            async with anyio.create_task_group() as releases:
                for lease in list(self._tracked):
                    releases.start_soon(release_quietly, self._engine, lease)
            for lease in list(self._tracked):
                self.forget_if_settled(lease)  # one whose release failed is tried next time
        finally:
            self._task_group = None
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(None, None, None)
            self._due.clear()

    def track(self, lease: Lease) -> None:
        """Heartbeat a lease of `acquire()` until it is released."""
        self._tracked.add(lease)
        self._enqueue(lease, first=True)

    def hold(self, lease: Lease) -> None:
        """Heartbeat the lease of a ``lease()`` block until `drop` (the block's exit)."""
        self._blocks.add(lease)
        self._enqueue(lease, first=True)

    def drop(self, lease: Lease) -> None:
        self._blocks.discard(lease)

    def forget_if_settled(self, lease: Lease) -> None:
        """Stop tracking `lease` unless it may still stand in the store.

        A lease lost to its deadline (a refresh answered too late may have applied) stays
        tracked, so that the manager's exit releases it rather than leave the key blocked.
        """
        if lease._settled_in_store():
            self._tracked.discard(lease)

    def _enqueue(self, lease: Lease, *, first: bool = False) -> None:
        interval = lease._timing.heartbeat_interval
        if first:
            interval = self._engine.pacing.first_heartbeat(interval)
        due = lease._last_sent + interval
        if self._wake is not None and (not self._due or due < self._due[0][0]):
            self._wake.set()
        heapq.heappush(self._due, (due, next(self._order), lease, lease._last_sent))

    async def _serve(self) -> None:
        """Start each held lease's heartbeat when due, a batch at a time."""
        task_group = self._task_group
        assert task_group is not None  # noqa: S101
        due = self._due
        while True:
            now = anyio.current_time()
            started = 0
            while due and due[0][0] <= now + _GRAIN and started < _BATCH:
                _, _, lease, planned_from = heapq.heappop(due)
                if not lease._active():
                    self.forget_if_settled(lease)
                elif lease._last_sent != planned_from:
                    self._enqueue(lease)  # refreshed meanwhile by a direct refresh()
                else:
                    task_group.start_soon(self._beat, lease)
                    started += 1
            if started == _BATCH:
                await anyio.lowlevel.checkpoint()  # run these before starting more
                continue
            self._wake = wake = anyio.Event()
            with anyio.move_on_after(due[0][0] - now if due else math.inf):
                await wake.wait()

    async def _beat(self, lease: Lease) -> None:
        with heartbeat_scope(lease):
            await beat(self._engine, lease)
        if lease._active() and self._task_group is not None:
            self._enqueue(lease)
        else:
            self.forget_if_settled(lease)
