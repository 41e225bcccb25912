"""Helpers shared by the behaviour tests: the backends, managers tuned for fast tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from emulators import make_client

from aiolease import LeaseManager

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# Short leases keep the suite quick; every timing bound in a test derives from these.
TTL = 1.5
SKEW = 0.2
POLL = 0.05


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


def new_manager(client: Any, table: str | None = None, **options: Any) -> LeaseManager:
    """A manager with short, test-friendly timings (overridable).

    On a store (``new_manager(store)``) or a DynamoDB client and table.
    """
    settings: dict[str, Any] = {
        "default_ttl": TTL,
        "max_clock_skew": SKEW,
        "poll_interval": POLL,
        "backoff": 0.1,
        "release_timeout": 2.0,
    }
    settings.update(options)
    if table is None:
        return LeaseManager(client, **settings)
    return LeaseManager(client, table, **settings)


class FakeClient:
    """A DynamoDB-shaped object that fails the test if any request is made."""

    class meta:  # noqa: N801  (mirrors botocore's client.meta)
        class service_model:  # noqa: N801
            service_name = "dynamodb"

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"no request should be made, but {name} was called")


#: Tests of mutual exclusion between concurrent callers: DynamoDB Local and the memory store
#: only, since moto's conditional writes are not atomic under concurrency.
ATOMIC = pytest.mark.backends("ddblocal", "memory")


async def eventually(predicate: Callable[[], bool], *, within: float = 5.0) -> None:
    """Wait until `predicate()` holds, failing the test after `within` seconds."""
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110  (polls state that has no event of its own)
            await anyio.sleep(0.01)
