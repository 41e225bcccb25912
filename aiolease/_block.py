"""The ``async with manager.lease(...)`` block: acquire, heartbeat, cancel, release."""

from __future__ import annotations

import logging
from types import TracebackType

import anyio
from anyio.abc import TaskGroup

from ._acquiring import acquire
from ._engine import Engine
from ._exceptions import LeaseConfigError, LeaseStoreError
from ._heartbeats import Heartbeats, heartbeat
from ._lease import Lease
from ._releasing import release, release_quietly
from ._timing import Timing
from .store import UNSET, DataUpdate

__all__ = ["LeaseBlock"]

logger = logging.getLogger("aiolease")


class LeaseBlock:
    """Holds a key for the body of one ``async with`` block.

    The body runs in a cancel scope whose deadline follows the lease's local deadline and
    that a loss cancels; on exit the lease is released, and a loss is raised as
    `LeaseLostError` (the body's own exception, if any, propagates instead).
    """

    __slots__ = (
        "_data",
        "_engine",
        "_heartbeats",
        "_key",
        "_lease",
        "_limit",
        "_scope",
        "_task_group",
        "_timing",
    )

    def __init__(
        self,
        engine: Engine,
        heartbeats: Heartbeats,
        key: str,
        *,
        timing: Timing,
        limit: float | None,
        data: DataUpdate,
    ) -> None:
        self._engine = engine
        self._heartbeats = heartbeats
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
        engine = self._engine
        lease = await acquire(engine, self._key, self._timing, self._limit, self._data)
        self._lease = lease
        if self._heartbeats.running:
            self._heartbeats.hold(lease)  # the running manager's scheduler: no task of its own
        else:
            task_group = anyio.create_task_group()
            try:
                await task_group.__aenter__()
            except BaseException:
                await release_quietly(engine, lease)
                raise
            task_group.start_soon(heartbeat, engine, lease)
            self._task_group = task_group
        # The body runs in this scope; its deadline follows the lease's local deadline.
        scope = anyio.CancelScope(deadline=lease._valid_until)
        scope.__enter__()
        lease._scopes.append(scope)
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
        lease._scopes.remove(scope)
        lease._expire_if_due("its local deadline passed before a refresh succeeded")
        try:
            if task_group is not None:
                task_group.cancel_scope.cancel()
                await task_group.__aexit__(None, None, None)
        finally:
            self._heartbeats.drop(lease)
            try:
                await release(self._engine, lease, UNSET)
            except LeaseStoreError as error:
                logger.warning("could not release %r on exit: %s", lease.key, error)
        if exc is not None and not swallowed:
            return  # the body's own exception (or an outer cancellation) propagates
        lost = lease._lost
        if swallowed and lost is None:  # our scope only ever fires on loss or the deadline
            lost = lease._mark_expired("its local deadline passed")
        if lost is not None:
            raise lost
