"""Releasing (design.md §7): the one release path, shielded, bounded and done once.

From the moment a release starts the holder's view is "not held". The write runs under
the lease's write lock (after any refresh in flight), in a task of its own that neither
an anyio cancel scope nor a plain asyncio cancellation interrupts, for at most
`release_timeout`. Of concurrent or repeated calls, one does the work.
"""

from __future__ import annotations

import logging
from typing import Final

import anyio

from ._engine import Engine
from ._exceptions import LeaseStoreError
from ._lease import Lease, decode_data
from ._shield import shielded
from .store import UNSET, DataUpdate, Record

__all__ = ["release", "release_quietly", "release_with_retries"]

logger = logging.getLogger("aiolease")

# Once a lease is lost or past its deadline, its release is a courtesy: kept short.
_EXPIRED_RELEASE_TIMEOUT: Final = 1.0


async def release(engine: Engine, lease: Lease, data: DataUpdate) -> bool:
    """Release `lease`; True if it was still ours. Raises `LeaseStoreError` if it gave up.

    A call after one that gave up finishes the job; any other call, concurrent or later,
    returns False.
    """
    engine.bind_loop()
    if lease._settled_in_store():
        return False  # released already, or the store showed someone else's state
    in_time = lease._lost is None and anyio.current_time() < lease._valid_until
    timeout = (
        engine.release_timeout if in_time else min(engine.release_timeout, _EXPIRED_RELEASE_TIMEOUT)
    )
    lease._mark_releasing()  # (also stops its heartbeat)

    async def write() -> bool:
        async with lease._writes():  # (waits out a refresh or another release)
            if lease._settled_in_store():
                return False  # another call released it meanwhile
            released = await release_with_retries(
                engine, lease.key, lease.token, data, valid_until=lease._valid_until
            )
            # Settled here, inside the shield, even if the caller is cancelled meanwhile.
            lease._mark_released()
            if released and (data is None or isinstance(data, str)):
                lease.data = decode_data(data)
        if engine.events.listening:
            engine.events.emit(
                "released",
                lease.key,
                fence=lease.fence,
                duration=anyio.current_time() - lease._granted_at,
                released=released,
            )
        return released

    finished, released = await shielded(write, timeout=timeout)
    if not finished or released is None:
        raise LeaseStoreError(
            f"release of {lease.key!r} did not complete within {timeout} s; "
            "the lease lapses at its expiry unless released again",
            operation="UpdateItem",
            transient=True,
            maybe_applied=True,
        )
    return released


async def release_quietly(engine: Engine, lease: Lease) -> None:
    """Release `lease`, logging instead of raising a failure (on the way out of a block)."""
    try:
        await release(engine, lease, UNSET)
    except LeaseStoreError as error:
        logger.warning("could not release %r: %s", lease.key, error)


async def release_with_retries(
    engine: Engine, key: str, token: str, data: DataUpdate, *, valid_until: float | None = None
) -> bool:
    """Clear `token`'s hold on `key`, retrying transient failures; True if it was ours.

    `valid_until` is the lease's local deadline, if known: before it nobody else may take
    the lease over, so a retry refused before then means an earlier attempt of ours
    applied (the markers below say so too, while they last).
    """
    failures = 0
    maybe_applied = False
    while True:
        try:
            outcome = await engine.store.release(key, token=token, data=data, now=engine.now())
        except LeaseStoreError as error:
            if not error.transient:
                raise
            maybe_applied = True  # botocore may have retried an applied write
            logger.info("release of %r failed, retrying: %s", key, error)
            await anyio.sleep(engine.pacing.backoff(failures))
            failures += 1
            continue
        if outcome.applied:
            return True
        maybe_applied = maybe_applied or outcome.resent  # an earlier send of the SDK's
        # Judged by when the refusal came back: a retry sent in time but held in the
        # network may be refused by a holder that legitimately took over meanwhile.
        if maybe_applied and valid_until is not None and anyio.current_time() < valid_until:
            return True
        record = outcome.record or await engine.read_back(key)
        # Our marker on the item means an earlier attempt (ours or the SDK's retry) applied;
        # the next grant keeps it one step back, in case that holder released too.
        return isinstance(record, Record) and token in {record.released, record.released_before}
