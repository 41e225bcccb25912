"""``aiolease run``: hold a lease while a child process runs, and stop it before the lease ends."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
from anyio.abc import Process, TaskStatus

from aiolease._exceptions import LeaseHeldError, LeaseLostError, LeaseStoreError

from ._waiting import WaitWatch

if TYPE_CHECKING:
    from aiolease._lease import Lease
    from aiolease._manager import LeaseManager

__all__ = ["EXIT_HELD", "EXIT_LOST", "GaveUpError", "run_under_lease"]

EXIT_HELD = 75  # sysexits' EX_TEMPFAIL: the lease is held elsewhere; try again later
EXIT_LOST = 76  # the lease was lost (or about to be) while the command ran: it was stopped

_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class GaveUpError(LeaseStoreError):
    """The wait for a lease ended after `waited` seconds of consecutive store failures."""

    def __init__(self, error: LeaseStoreError, *, waited: float) -> None:
        super().__init__(
            str(error),
            operation=error.operation,
            transient=True,
            maybe_applied=error.maybe_applied,
        )
        self.waited = waited
        self.__cause__ = error.__cause__


class _Signals:
    """SIGINT, SIGTERM and SIGHUP during a run: they end the wait, then go to the command."""

    def __init__(self) -> None:
        self.wait: anyio.CancelScope | None = None  # cancelled by a signal while waiting
        self.process: Process | None = None  # the command, once started: signals go to it
        self.received: int | None = None  # the signal that ended the wait
        self._pending: list[int] = []  # arrived after the grant, before the command

    async def watch(self, *, task_status: TaskStatus[None]) -> None:
        with anyio.open_signal_receiver(*_HANDLED) as signals:
            task_status.started()
            async for signum in signals:
                self.handle(signum)

    def handle(self, signum: int) -> None:
        """Forward `signum` to the command; before it runs, end the wait or keep it."""
        if self.process is not None:
            _signal_group(self.process, signum)
        elif self.wait is not None:
            if self.received is None:
                self.received = signum
                self.wait.cancel()
        else:
            self._pending.append(signum)

    def started(self, process: Process) -> None:
        """The command runs: signals go to it from now on, those that came early first."""
        self.process = process
        for signum in self._pending:
            _signal_group(process, signum)
        self._pending.clear()


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
    watch: WaitWatch | None = None,
) -> int:
    """Run `command` while holding `key`; return the exit code for the ``run`` command.

    The manager's safety margin must exceed `grace`: the child is sent SIGTERM when the
    lease's local deadline (safety margin deducted) arrives, SIGKILL `grace` seconds
    later, and so is gone before any other holder may start. A signal while waiting for
    the lease ends the wait (the acquire undone) with 128 + its number; `watch`, a hook
    of `manager`, may end it too, after a long store outage (`LeaseStoreError`).
    """
    signals = _Signals()
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        await tg.start(signals.watch)
        try:
            code = await _hold_and_run(
                manager,
                key,
                command,
                signals,
                watch,
                ttl=ttl,
                timeout=timeout,
                grace=grace,
                held_exit_code=held_exit_code,
                lost_exit_code=lost_exit_code,
            )
        except Exception as error:  # noqa: BLE001 - raised below, outside the task group
            failure = error
        finally:
            tg.cancel_scope.cancel()
    if failure is not None:
        raise failure  # as itself, not wrapped in an exception group
    return code


async def _hold_and_run(
    manager: LeaseManager,
    key: str,
    command: Sequence[str],
    signals: _Signals,
    watch: WaitWatch | None,
    *,
    ttl: float,
    timeout: float | None,
    grace: float,
    held_exit_code: int,
    lost_exit_code: int,
) -> int:
    exited: list[int] = []  # the command's own exit code, once it has exited by itself
    try:
        with anyio.CancelScope() as waiting:
            signals.wait = waiting
            if watch is not None:
                watch.scope = waiting
            async with manager.lease(key, ttl=ttl, timeout=timeout) as lease:
                signals.wait = None
                if watch is not None:
                    watch.end()
                return await _supervise(lease, command, grace, exited, signals)
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
    finally:
        if watch is not None:
            watch.end()
    # The wait was cancelled: by a signal, or by the watch after a long outage.
    if signals.received is not None:
        return 128 + signals.received
    if watch is not None and watch.gave_up is not None:
        raise GaveUpError(watch.gave_up, waited=watch.outage_timeout)
    raise AssertionError("the wait was cancelled by nobody")  # pragma: no cover


async def _supervise(
    lease: Lease, command: Sequence[str], grace: float, exited: list[int], signals: _Signals
) -> int:
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
    signals.started(process)
    try:
        code = await process.wait()
        exited.append(code if code >= 0 else 128 - code)
    finally:
        if process.returncode is None:
            # Cancelled: the lease is lost or about to be. Stop the child before it ends.
            with anyio.CancelScope(shield=True):
                await _stop(process, grace)
    return exited[0]


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
