"""The undo of an acquire (design.md §5): a grant we may have won but will not hand out.

An acquire that ends without a lease (cancelled, timed out, failed, or answered too late)
while a write of its own may be in force or still on its way first revokes its token on
the item, so that no late write of it can land afterwards, then releases whatever of it
did land, with the data it found put back.
"""

from __future__ import annotations

import logging

import anyio

from ._engine import Engine, Unreadable
from ._exceptions import LeaseStoreError
from ._releasing import release_with_retries
from ._shield import shielded
from .store import RESTORE, UNSET, DataUpdate, _Unset

__all__ = ["undo"]

logger = logging.getLogger("aiolease")


async def undo(engine: Engine, key: str, token: str, data: DataUpdate) -> None:
    """Revoke `token` on `key`, then release what of it is in force (shielded, bounded)."""
    restore = UNSET if isinstance(data, _Unset) else RESTORE

    async def revoke_and_release() -> bool:
        await _revoke(engine, key, token)
        return await release_with_retries(engine, key, token, restore)

    try:
        finished, _ = await shielded(revoke_and_release, timeout=engine.release_timeout)
    except LeaseStoreError as error:
        finished = False
        logger.warning("could not undo an unfinished acquire of %r: %s", key, error)
    if not finished:
        logger.warning("an unfinished acquire of %r may hold it until its ttl lapses", key)


async def _revoke(engine: Engine, key: str, token: str) -> None:
    """Add `token` to `key`'s revoked tokens, retrying transient failures."""
    previous: tuple[str, ...] = ()  # the usual case; a refusal tells the real list
    failures = 0
    while True:
        try:
            outcome = await engine.store.revoke(
                key, token=token, previous=previous, now=engine.now()
            )
        except LeaseStoreError as error:
            if not error.transient:
                raise
            logger.info("revoking an unfinished acquire of %r failed, retrying: %s", key, error)
        else:
            if outcome.applied:
                return
            found = outcome.record or await engine.read_back(key)
            if not isinstance(found, Unreadable):
                current = () if found is None else found.revoked
                if token in current:
                    return  # an earlier send of ours applied
                previous = current  # another undo came first: add ours to its list
                continue
        await anyio.sleep(engine.pacing.backoff(failures))
        failures += 1
