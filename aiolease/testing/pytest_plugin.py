"""A pytest plugin with a local DynamoDB and a lease manager as fixtures.

Enable it in your top-level ``conftest.py``::

    pytest_plugins = ["aiolease.testing.pytest_plugin"]

Fixtures:

``aiolease_dynamodb`` (session)
    A :class:`~aiolease.testing.LocalDynamoDB`: a moto server serialised so that
    conditional writes are atomic, with a client and a lease table ``leases``. Started
    once per test session, on the session's event loop.
``aiolease_manager_options`` (function)
    The keyword options ``lease_manager`` passes to :class:`~aiolease.LeaseManager`
    (a :class:`~aiolease.testing.ManagerOptions`); empty by default. Override it in a
    ``conftest.py`` or a test module to set, for example, ``default_ttl`` for your tests.
``lease_manager`` (function)
    A fresh :class:`~aiolease.LeaseManager` on that table. It is not entered: use
    ``async with lease_manager:`` in the test if you use ``acquire()`` with heartbeats.

The emulator runs on the session-scoped event loop, so tests that use it must run on it
too: set ``asyncio_default_test_loop_scope = "session"`` (pytest-asyncio 1.0 or newer),
or mark them ``@pytest.mark.asyncio(loop_scope="session")``. The table is shared by the
whole session: give each test its own lease keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from ._emulator import LocalDynamoDB, local_dynamodb

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aiolease import LeaseManager

    from ._options import ManagerOptions

__all__ = ["aiolease_dynamodb", "aiolease_manager_options", "lease_manager"]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def aiolease_dynamodb() -> AsyncIterator[LocalDynamoDB]:
    """A moto server with a client and a lease table, for the whole session."""
    async with local_dynamodb() as env:
        yield env


@pytest.fixture
def aiolease_manager_options() -> ManagerOptions:
    """Keyword options for the ``lease_manager`` fixture's LeaseManager (none)."""
    return {}


@pytest.fixture
def lease_manager(
    aiolease_dynamodb: LocalDynamoDB,
    aiolease_manager_options: ManagerOptions,
) -> LeaseManager:
    """A LeaseManager on the ``aiolease_dynamodb`` table (not entered)."""
    return aiolease_dynamodb.manager(**aiolease_manager_options)
