"""How ``aiolease run`` routes signals: to the wait, or to the command, never lost."""

from __future__ import annotations

import signal
import sys

import anyio

from aiolease.cli._run import _Signals


async def test_a_signal_while_waiting_ends_the_wait_once() -> None:
    signals = _Signals()
    with anyio.CancelScope() as wait:
        signals.wait = wait
        signals.handle(signal.SIGTERM)
        signals.handle(signal.SIGINT)  # the first one decides
        await anyio.sleep_forever()
    assert wait.cancelled_caught
    assert signals.received == signal.SIGTERM


async def test_a_signal_between_the_grant_and_the_command_reaches_the_command() -> None:
    signals = _Signals()
    signals.handle(signal.SIGTERM)  # the wait is over; the command is not started yet
    assert signals.received is None
    process = await anyio.open_process(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        signals.started(process)
        with anyio.fail_after(10):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == -signal.SIGTERM


async def test_signals_go_to_a_running_command() -> None:
    signals = _Signals()
    process = await anyio.open_process(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        signals.started(process)
        signals.handle(signal.SIGINT)
        with anyio.fail_after(10):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code != 0
