"""``aiolease run``: hold a lease while a child process runs, and stop it before the lease ends."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
from anyio.abc import Process

from aiolease._exceptions import LeaseHeldError, LeaseLostError

if TYPE_CHECKING:
    from aiolease._lease import Lease
    from aiolease._manager import LeaseManager

__all__ = ["EXIT_HELD", "EXIT_LOST", "run_under_lease"]

EXIT_HELD = 75  # sysexits' EX_TEMPFAIL: the lease is held elsewhere; try again later
EXIT_LOST = 76  # the lease was lost (or about to be) while the command ran: it was stopped

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def run_under_lease(
    manager: LeaseManager,
    key: str,
    command: Sequence[str],
    *,
    ttl: float,
    timeout: float | None,
    grace: float,
    held_exit_code: int = EXIT_HELD,
    lost_exit_code: int = EXIT_LOST,
) -> int:
    """Run `command` while holding `key`; return the exit code for the ``run`` command.

    The manager's safety margin must exceed `grace`: the child is sent SIGTERM when the
    lease's local deadline (safety margin deducted) arrives, SIGKILL `grace` seconds
    later, and so is gone before any other holder may start.
    """
    exited: list[int] = []  # the command's own exit code, once it has exited by itself
    try:
        async with manager.lease(key, ttl=ttl, timeout=timeout) as lease:
            return await _supervise(lease, command, grace, exited)
    except LeaseHeldError as held:
        until = "" if held.expires_at is None else f" until {held.expires_at.isoformat()}"
        _say(
            f"lease {key!r} is held by {held.owner!r}{until}; "
            f"it may be taken over in {held.retry_after:.1f} s"
        )
        return held_exit_code
    except LeaseLostError as lost:
        if exited:
            # Judged by what happened to the command: it finished before anything stopped
            # it, so its own code stands (a wrapper that retries on "lost" must not run a
            # job again that has completed).
            _say(f"{lost}; the command had already exited by itself")
            return exited[0]
        _say(f"{lost}; the command was stopped")
        return lost_exit_code


async def _supervise(lease: Lease, command: Sequence[str], grace: float, exited: list[int]) -> int:
    env = dict(os.environ)
    env.update(
        AIOLEASE_KEY=lease.key,
        AIOLEASE_FENCE=str(lease.fence),
        AIOLEASE_OWNER=lease.owner,
        AIOLEASE_PARENT_PID=str(os.getpid()),
    )
    process = await anyio.open_process(
        [sys.executable, "-m", "aiolease.cli._exec", *command],
        stdin=None,
        stdout=None,
        stderr=None,
        env=env,
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_forward_signals, process)
            code = await process.wait()
            exited.append(code if code >= 0 else 128 - code)
            tg.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            # Cancelled: the lease is lost or about to be. Stop the child before it ends.
            with anyio.CancelScope(shield=True):
                await _stop(process, grace)
    return exited[0]


async def _forward_signals(process: Process) -> None:
    with anyio.open_signal_receiver(*_FORWARDED) as signals:
        async for signum in signals:
            _signal_group(process, signum)


async def _stop(process: Process, grace: float) -> None:
    _signal_group(process, signal.SIGTERM)
    with anyio.move_on_after(grace):
        await process.wait()
        return
    _signal_group(process, signal.SIGKILL)
    await process.wait()


def _signal_group(process: Process, signum: int) -> None:
    """Signal the child's process group (it makes one), or the child alone."""
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.Signals(signum))


def _say(message: str) -> None:
    sys.stderr.write(f"aiolease: {message}\n")
