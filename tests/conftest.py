"""Shared fixtures: a test that takes ``store`` runs once per store, ``backend`` once per DynamoDB.

Stores
    The store-agnostic tests take ``store``: a fresh ``MemoryStore`` (``memory``) and a
    ``DynamoDBStore`` on each backend below. The DynamoDB-only tests (raw requests,
    ``FaultyClient``, ``LossyProxy``, expressions, the CLI) take ``backend``.

Backends
    ``moto`` (moto's server, in-process, serialised as in :mod:`aiolease.testing`),
    ``dynalite`` (Node.js) and ``ddblocal`` (Amazon's DynamoDB Local, Java). Each server
    starts once per test session, when a test first needs it, with one shared client (no
    SDK retries) and a lease table ``leases`` keyed by ``pk``.

Choosing backends
    ``AIOLEASE_TEST_BACKENDS=moto,dynalite`` (comma-separated) restricts the run; the
    default is all three (``memory`` always runs). ``@pytest.mark.backends("ddblocal", ...)``
    limits a test to the named backends (and ``memory``, if named); its other instances
    are deselected, not skipped. A backend whose
    tools (``java``, ``node``, the npm packages in ``tests/npm``) are missing makes
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
from typing import TYPE_CHECKING

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
from support import Backend

from aiolease.dynamodb import DynamoDBStore
from aiolease.store import Store
from aiolease.testing import MemoryStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


# pytester runs the aiolease.testing plugin the way users enable it; the plugin's own
# fixtures are also available to the suite (tests/test_testing_module.py uses them).
pytest_plugins = ["pytester", "aiolease.testing.pytest_plugin"]

EMULATOR_BACKENDS: tuple[str, ...] = ("moto", "dynalite", "ddblocal")
# A user's project, run by the nox session testing_extra with only aiolease[testing].
collect_ignore = ["user_project"]

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
#: The in-process store: every store-agnostic test also runs on it.
MEMORY = "memory"
STORES = [MEMORY, *BACKENDS]


def _marked_backends(item: pytest.Item) -> set[str] | None:
    names: set[str] | None = None
    for marker in item.iter_markers("backends"):
        unknown = [n for n in marker.args if n not in (*ALL_BACKENDS, MEMORY)]
        if unknown or not marker.args:
            msg = (
                f"{item.nodeid}: @pytest.mark.backends needs names from "
                f"{(*ALL_BACKENDS, MEMORY)}, "
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
        params = callspec.params if callspec is not None else {}
        backend = params.get("backend", params.get("store"))
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


class _Servers:
    """The DynamoDB implementations started so far, each once per session."""

    def __init__(self, stack: contextlib.AsyncExitStack) -> None:
        self._stack = stack
        self._open: dict[str, Backend] = {}

    async def get(self, name: str) -> Backend:
        if name not in self._open:
            self._open[name] = await self._stack.enter_async_context(_open_backend(name))
        return self._open[name]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _servers() -> AsyncIterator[_Servers]:
    async with contextlib.AsyncExitStack() as stack:
        yield _Servers(stack)


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=BACKENDS, ids=BACKENDS)
async def backend(request: pytest.FixtureRequest, _servers: _Servers) -> Backend:
    """One DynamoDB implementation per parameter, started once per session."""
    return await _servers.get(request.param)


@pytest_asyncio.fixture(loop_scope="session", params=STORES, ids=STORES)
async def store(request: pytest.FixtureRequest, _servers: _Servers) -> Store:
    """Every store per parameter: a fresh `MemoryStore`, or `DynamoDBStore` on a backend.

    The store-agnostic tests take this fixture; they run on every store, and faults they
    inject are injected at the store level.
    """
    if request.param == MEMORY:
        return MemoryStore()
    opened = await _servers.get(request.param)
    return DynamoDBStore(opened.client, opened.table)


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    """A lease key unique to this test run."""
    return f"test:{request.node.name}:{uuid.uuid4().hex[:8]}"
