"""Shared fixtures: every test that takes ``backend`` runs once per DynamoDB implementation.

Backends
    ``moto`` (moto's server, in-process, serialised as in :mod:`aiolease.testing`),
    ``dynalite`` (Node.js) and ``ddblocal`` (Amazon's DynamoDB Local, Java). Each server
    starts once per test session, with one shared client (no SDK retries) and a lease
    table ``leases`` keyed by ``pk``. Tests are grouped by backend, so one server runs at
    a time.

Choosing backends
    ``AIOLEASE_TEST_BACKENDS=moto,dynalite`` (comma-separated) restricts the run; the
    default is all three. ``@pytest.mark.backends("ddblocal", ...)`` limits a test to the
    named backends; its other instances are deselected, not skipped. A backend whose
    tools (``java``, ``node``, the npm packages in ``tests/emulators``) are missing makes
    its tests error with a message pointing at ``scripts/test``, which installs them.

Real DynamoDB (opt-in, off by default)
    Set ``AIOLEASE_REAL_DYNAMODB_TABLE`` to the name of an existing table whose partition
    key is ``pk`` (string), and provide credentials and a region the standard way
    (``AWS_PROFILE`` or ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, and
    ``AWS_REGION``/``AWS_DEFAULT_REGION``). That adds a fourth backend, ``real``, using
    the default credential chain; list it in ``AIOLEASE_TEST_BACKENDS`` too if you set
    that variable. Tests write items under unique ``test:...`` keys and do not delete the
    table. Tests marked ``backends(...)`` without ``"real"`` never run against it.

Clients
    ``AIOLEASE_TEST_CLIENT=aioboto3`` makes every client through aioboto3 instead of
    aiobotocore (see :func:`emulators.make_client`).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from emulators import (
    Emulator,
    EmulatorUnavailableError,
    check_available,
    create_lease_table,
    dynalite_server,
    dynamodb_local_server,
    make_client,
    moto_server,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from types_aiobotocore_dynamodb import DynamoDBClient

# pytester runs the aiolease.testing plugin the way users enable it; the plugin's own
# fixtures are also available to the suite (tests/test_testing_module.py uses them).
pytest_plugins = ["pytester", "aiolease.testing.pytest_plugin"]

EMULATOR_BACKENDS: tuple[str, ...] = ("moto", "dynalite", "ddblocal")
REAL_BACKEND = "real"
ALL_BACKENDS: tuple[str, ...] = (*EMULATOR_BACKENDS, REAL_BACKEND)
LEASE_TABLE = "leases"

_LAUNCHERS: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[Emulator]]] = {
    "moto": moto_server,
    "dynalite": dynalite_server,
    "ddblocal": dynamodb_local_server,
}


def selected_backends() -> list[str]:
    """Return the backends this run covers, from the environment."""
    real_table = os.environ.get("AIOLEASE_REAL_DYNAMODB_TABLE")
    raw = os.environ.get("AIOLEASE_TEST_BACKENDS", "").strip()
    if not raw:
        return [*EMULATOR_BACKENDS, *([REAL_BACKEND] if real_table else [])]
    names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in ALL_BACKENDS]
    if unknown:
        msg = f"AIOLEASE_TEST_BACKENDS names unknown backends {unknown}; known: {ALL_BACKENDS}"
        raise pytest.UsageError(msg)
    if REAL_BACKEND in names and not real_table:
        msg = "AIOLEASE_TEST_BACKENDS lists 'real' but AIOLEASE_REAL_DYNAMODB_TABLE is not set"
        raise pytest.UsageError(msg)
    return names


BACKENDS = selected_backends()


@dataclass
class Backend:
    """A DynamoDB implementation under test, with a shared client and a lease table."""

    name: str
    #: ``None`` for real DynamoDB (the SDK's default endpoint).
    endpoint_url: str | None
    client: DynamoDBClient
    table: str

    def new_client(
        self, *, endpoint_url: str | None = None, **config: Any
    ) -> contextlib.AbstractAsyncContextManager[DynamoDBClient]:
        """Return an async context manager for an extra client of this backend.

        ``config`` goes to :class:`botocore.config.Config` (retries default to one
        attempt; pass e.g. ``retries={"max_attempts": 3, "mode": "standard"}``).
        ``endpoint_url`` overrides the backend's, e.g. to go through a proxy.
        """
        return make_client(endpoint_url or self.endpoint_url, **config)


def _marked_backends(item: pytest.Item) -> set[str] | None:
    names: set[str] | None = None
    for marker in item.iter_markers("backends"):
        unknown = [n for n in marker.args if n not in ALL_BACKENDS]
        if unknown or not marker.args:
            msg = (
                f"{item.nodeid}: @pytest.mark.backends needs names from {ALL_BACKENDS}, "
                f"got {marker.args}"
            )
            raise pytest.UsageError(msg)
        marked = set(marker.args)
        names = marked if names is None else names & marked
    return names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        allowed = _marked_backends(item)
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        if allowed is not None and backend is not None and backend not in allowed:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@contextlib.asynccontextmanager
async def _open_backend(name: str) -> AsyncIterator[Backend]:
    if name == REAL_BACKEND:
        table = os.environ["AIOLEASE_REAL_DYNAMODB_TABLE"]
        async with make_client(None) as client:
            await client.describe_table(TableName=table)
            yield Backend(name=name, endpoint_url=None, client=client, table=table)
        return
    try:
        check_available(name)
    except EmulatorUnavailableError as exc:
        pytest.fail(f"backend {name!r} is unavailable: {exc}", pytrace=False)
    async with (
        _LAUNCHERS[name]() as emulator,
        make_client(emulator.endpoint_url) as client,
    ):
        await create_lease_table(client, LEASE_TABLE)
        yield Backend(
            name=name, endpoint_url=emulator.endpoint_url, client=client, table=LEASE_TABLE
        )


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=BACKENDS, ids=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """One DynamoDB implementation per parameter, started once per session."""
    name: str = request.param
    async with _open_backend(name) as opened:
        yield opened


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    """A lease key unique to this test run."""
    return f"test:{request.node.name}:{uuid.uuid4().hex[:8]}"
