"""Cleanup that must finish whatever happens to the caller, within a time bound."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import anyio

__all__ = ["shielded"]

T = TypeVar("T")


def _resolve(future: asyncio.Future[None], _: object) -> None:
    if not future.done():
        future.set_result(None)


async def shielded(
    function: Callable[[], Awaitable[T]], *, timeout: float
) -> tuple[bool, T | None]:
    """Run `function` to completion or until `timeout`; return (finished, result).

    anyio's shielded scope keeps cancel scopes out; running in a task of its own also
    keeps out a plain asyncio ``task.cancel()`` (``asyncio.timeout``, ``wait_for``). A
    cancellation that arrives meanwhile is raised again once the work is over.
    """

    async def bounded() -> tuple[bool, T | None]:
        with anyio.move_on_after(timeout):
            return True, await function()
        return False, None

    task = asyncio.ensure_future(bounded())
    cancelled = False
    with anyio.CancelScope(shield=True):
        while not task.done():
            # Wait on a future of our own: a cancellation of this task cancels it, not `task`.
            done: asyncio.Future[None] = task.get_loop().create_future()
            task.add_done_callback(partial(_resolve, done))
            try:
                await done
            except asyncio.CancelledError:
                cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return task.result()
