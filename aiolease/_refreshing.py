"""Refreshing (design.md §6): one logical refresh, retried until the local deadline.

A refresh writes a new record version and the next write sequence number, conditioned
on the holder's token; both are fixed before the first send and kept across retries, so
a retried refresh applies the same values again and an older one arriving late is
refused. The renewed deadline counts from the earliest send whose outcome is unknown.
"""

from __future__ import annotations

import logging

import anyio

from ._engine import Engine, Unreadable
from ._exceptions import LeaseStoreError, LostReason, TableNotFoundError
from ._lease import Lease
from ._timing import Unanswered
from .store import DataUpdate, Outcome, Record

__all__ = ["renew"]

logger = logging.getLogger("aiolease")


async def renew(engine: Engine, lease: Lease, data: DataUpdate, *, retry_permanent: bool) -> None:
    """Refresh `lease`, retrying until its local deadline; the caller holds its write lock.

    Raises `LeaseLostError` when the store shows another state, when a release started,
    or when the deadline passed first. `retry_permanent` (a heartbeat) also retries
    failures that are not transient, since giving up early would only end the lease.
    """
    version = engine.new_token()
    # Later than every write of ours so far, sent or not: taken before the first send, so
    # that a refresh that never finishes cannot leave its number to a later one.
    sequence = lease._sequence = lease._sequence + 1
    failures = 0
    started = anyio.current_time()
    unanswered = Unanswered()
    while True:
        if not lease._active():  # a release started, or it was lost
            raise lease._lost or lease._released_error()
        sent_at, suspended = anyio.current_time(), engine.clocks.suspended()
        lease._expire_if_due("its local deadline passed before a refresh succeeded")
        if lease._lost is not None:
            raise lease._lost from lease._last_failure
        outcome = await _send(
            engine, lease, version, sequence, data=data, retry_permanent=retry_permanent
        )
        if outcome is None:
            unanswered.note(sent_at, suspended)
            remaining = lease._valid_until - anyio.current_time()
            await anyio.sleep(max(0.0, min(engine.pacing.backoff(failures), remaining)))
            failures += 1
            continue
        if not outcome.applied:
            record = outcome.record or await engine.read_back(lease.key)
            raise lease._mark_lost(*_why_lost(record, lease.token))
        if anyio.current_time() >= lease._valid_until:
            # Too late: the holder already had to stop. Do not revive the lease.
            raise lease._mark_lost(
                "expired", "a refresh was answered only after its local deadline"
            )
        assert outcome.record is not None  # noqa: S101
        sent_at, suspended = unanswered.origin(sent_at, suspended)
        lease._renewed(
            outcome.record, sent_at=sent_at, suspended_at_send=suspended, sequence=sequence
        )
        if engine.events.listening:
            duration = anyio.current_time() - started
            engine.events.emit("refreshed", lease.key, fence=lease.fence, duration=duration)
        return


async def _send(
    engine: Engine,
    lease: Lease,
    version: str,
    sequence: int,
    *,
    data: DataUpdate,
    retry_permanent: bool,
) -> Outcome | None:
    """One refresh request bounded by the local deadline; None when it got no answer."""
    now = engine.now()
    # Until an answer comes, this is what the store did: if the deadline passes first,
    # the loss names it as its cause.
    lease._last_failure = LeaseStoreError(
        "a refresh got no answer before the lease's local deadline",
        operation="refresh",
        transient=True,
        maybe_applied=True,
    )
    with anyio.move_on_after(lease._valid_until - anyio.current_time()):
        try:
            return await engine.store.refresh(
                lease.key,
                token=lease.token,
                version=version,
                ttl=lease.ttl,
                sequence=sequence,
                data=data,
                now=now,
            )
        except TableNotFoundError as error:
            if not retry_permanent:
                raise
            # The table, and the item with it, is gone: nothing left to refresh.
            lost = lease._mark_lost("deleted", f"its table is gone: {error}")
            raise lost from error
        except LeaseStoreError as error:
            if not (error.transient or retry_permanent):
                raise
            lease._last_failure = error
            if engine.events.listening:
                engine.events.emit("refresh_failed", lease.key, fence=lease.fence, error=error)
            logger.log(
                logging.INFO if error.transient else logging.ERROR,
                "refresh of %r failed, retrying until its deadline: %s",
                lease.key,
                error,
            )
    return None


def _why_lost(record: Record | Unreadable | None, token: str) -> tuple[LostReason, str]:
    if isinstance(record, Unreadable):
        return "taken", "its token condition failed (the record could not be read back)"
    if record is None:
        return "deleted", "its item is gone (deleted by hand or by TTL) or could not be read"
    if record.token is None:
        return "released", "the record shows no holder (released elsewhere or broken)"
    if record.token != token:
        return "taken", f"{record.owner!r} holds it now (fence {record.fence})"
    return "taken", "the record changed under us"
