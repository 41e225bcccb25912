"""Every store keeps the store contract: MemoryStore (both semantics) and DynamoDBStore."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from support import Backend

from aiolease.dynamodb import DynamoDBStore
from aiolease.store import Store
from aiolease.testing import MemoryStore
from aiolease.testing.conformance import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()


class TestMemoryStoreWithAServerClock(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore(semantics="server-clock", clock=self.clock)


class TestDynamoDBStore(StoreContract):
    """On moto, dynalite and DynamoDB Local (dynalite returns no record with a refusal)."""

    page_size_hint = 40

    @pytest.fixture
    def store(self, backend: Backend) -> DynamoDBStore:
        self.refusals_carry_the_record = backend.name != "dynalite"
        return DynamoDBStore(backend.client, backend.table)

    @pytest.fixture
    async def unreachable_store(self, backend: Backend) -> AsyncIterator[DynamoDBStore]:
        with socket.socket() as probe:  # a loopback port that nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        async with backend.new_client(endpoint_url=f"http://127.0.0.1:{port}") as client:
            yield DynamoDBStore(client, backend.table)

    @pytest.fixture
    def missing_table_store(self, backend: Backend) -> DynamoDBStore:
        return DynamoDBStore(backend.client, f"{backend.table}-missing")

    async def delete_item(self, store: Store, key: str) -> None:
        assert isinstance(store, DynamoDBStore)
        await store.client.delete_item(TableName=store.table, Key=store.item_key(key))  # type: ignore[attr-defined]
