"""``aiolease local``: a DynamoDB emulator on a loopback port for local development."""

from __future__ import annotations

import shlex
import signal
import socket
import sys
from typing import Final, Literal

import anyio

from aiolease._manager import LeaseManager
from aiolease.testing._emulator import (
    DUMMY_ACCESS_KEY,
    DUMMY_REGION,
    DUMMY_SECRET_KEY,
    EmulatorError,
    endpoint,
    new_client,
    require_moto,
)

__all__ = ["INSTALL_HINT", "LocalError", "missing_moto", "serve"]

Backend = Literal["moto", "dynamodb-local"]

HOST: Final = "127.0.0.1"
INSTALL_HINT: Final = "pip install 'aiolease[cli,testing]'"
_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LocalError(Exception):
    """The emulator cannot run; the message says what to install or change."""


def serve(*, backend: Backend, port: int, table: str, dynamodb_local_dir: str | None) -> None:
    """Run the emulator with `table` created until SIGINT, SIGTERM or SIGHUP.

    `port` 0 picks a free port. Raises :class:`LocalError` when the emulator is missing or
    cannot start.
    """
    if backend == "moto" and (missing := missing_moto()) is not None:
        raise LocalError(f"{missing}; install it with: {INSTALL_HINT}")
    if port and not _port_is_free(port):
        raise LocalError(f"port {port} on {HOST} is in use; pick another with --port")
    try:
        anyio.run(_serve, backend, port, table, dynamodb_local_dir)
    except BaseExceptionGroup as group:  # from the task group: report a single cause alone
        cause = _single(group)
        if isinstance(cause, (EmulatorError, LocalError)):
            raise LocalError(str(cause)) from None
        raise
    except EmulatorError as error:  # also EmulatorUnavailableError: what to install
        raise LocalError(str(error)) from None


async def _serve(backend: Backend, port: int, table: str, dynamodb_local_dir: str | None) -> None:
    with anyio.open_signal_receiver(*_STOP_SIGNALS) as signals:
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                async for signum in signals:
                    _say(f"{signal.Signals(signum).name} received; stopping")
                    tg.cancel_scope.cancel()
                    return

            tg.start_soon(stop_on_signal)
            async with endpoint(
                backend, port=port, dynamodb_local_dir=dynamodb_local_dir
            ) as endpoint_url:
                async with new_client(endpoint_url) as client:
                    await LeaseManager(client, table).create_table()
                _announce(backend, endpoint_url, table)
                await anyio.sleep_forever()
    _say("stopped")


def _announce(backend: Backend, endpoint_url: str, table: str) -> None:
    name = "moto (requests serialised)" if backend == "moto" else "AWS DynamoDB Local"
    env = {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": DUMMY_REGION,
        "AWS_DEFAULT_REGION": DUMMY_REGION,  # the name botocore reads
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
        "AIOLEASE_TABLE": table,
    }
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    lines = [
        f"{name} is serving DynamoDB in memory; table {table!r} is ready.",
        f"endpoint: {endpoint_url}",
        "",
        "Use it from another shell with:",
        "",
        f"export {exports}",
        "",
        "The data is lost when it stops. Press Ctrl-C to stop.",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _say(message: str) -> None:
    sys.stdout.write(f"aiolease local: {message}\n")
    sys.stdout.flush()


def missing_moto() -> str | None:
    """What is missing to run moto's server, or None if it can run."""
    try:
        require_moto()
    except ImportError as error:
        cause = error.__cause__ if isinstance(error.__cause__, ImportError) else error
        return f"moto's server is not installed (no module {cause.name or cause!s})"
    return None


def _single(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True
