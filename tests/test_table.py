"""The lease table: creation, TTL, key schemas, renamed attributes, refused tables."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from support import Backend, FakeClient, new_manager

from aiolease import LeaseConfigError, LeaseManager


def table_name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def test_create_table_is_idempotent_and_enables_ttl(backend: Backend) -> None:
    name = table_name()
    manager = new_manager(backend.client, name)
    assert await manager.create_table() is True
    assert await manager.create_table() is False
    description = (await backend.client.describe_table(TableName=name))["Table"]
    assert description["TableStatus"] == "ACTIVE"
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    if backend.name != "dynalite":  # dynalite has no TTL: create_table skips it
        ttl = await backend.client.describe_time_to_live(TableName=name)
        assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] in {"ENABLED", "ENABLING"}
        assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
    lease = await manager.acquire("k", timeout=0)
    await manager.release(lease)
    await backend.client.delete_table(TableName=name)


async def test_items_carry_a_ttl_in_epoch_seconds_one_buffer_after_expiry(
    backend: Backend, key: str
) -> None:
    manager = new_manager(backend.client, backend.table, ttl_buffer=3600)
    lease = await manager.acquire(key, timeout=0)
    item = (await backend.client.get_item(TableName=backend.table, Key={"pk": {"S": key}}))["Item"]
    expires_ms = int(item["expires_at"]["N"])
    assert int(item["ttl"]["N"]) * 1000 >= expires_ms + 3600 * 1000
    assert int(item["ttl"]["N"]) * 1000 < expires_ms + 3601 * 1000
    assert lease.expires_at.timestamp() * 1000 == expires_ms
    await manager.release(lease)


async def test_a_table_with_a_sort_key_uses_a_fixed_sort_value(backend: Backend) -> None:
    name = table_name()
    manager = new_manager(backend.client, name, sort_key=("sk", "lease"))
    await manager.create_table()
    lease = await manager.acquire("job:1", data={"n": 1}, timeout=0)
    item = await backend.client.get_item(
        TableName=name, Key={"pk": {"S": "job:1"}, "sk": {"S": "lease"}}
    )
    assert item["Item"]["fence"]["N"] == str(lease.fence)
    assert [info.key async for info in manager.list(prefix="job:")] == ["job:1"]
    await manager.release(lease)
    # Without sort_key the manager refuses the table, saying what to pass.
    plain = new_manager(backend.client, name)
    with pytest.raises(LeaseConfigError, match="sort_key"):
        await plain.get("job:1")
    await backend.client.delete_table(TableName=name)


async def test_attributes_can_be_renamed(backend: Backend) -> None:
    name = table_name()
    names = {"key": "id", "owner": "holder", "token": "tok", "fence": "seq", "ttl": "expiry"}
    manager = new_manager(backend.client, name, attribute_names=names)
    await manager.create_table()
    lease = await manager.acquire("k", data="d", timeout=0)
    item = (await backend.client.get_item(TableName=name, Key={"id": {"S": "k"}}))["Item"]
    assert item["holder"]["S"] == manager.owner
    assert item["tok"]["S"] == lease.token
    assert item["seq"]["N"] == str(lease.fence)
    assert "expiry" in item
    assert {"owner", "token", "fence", "ttl", "pk"}.isdisjoint(item)
    assert await manager.release(lease)
    await backend.client.delete_table(TableName=name)


async def test_a_wrong_key_type_is_refused(backend: Backend) -> None:
    name = table_name()
    await backend.client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    manager = new_manager(backend.client, name)
    with pytest.raises(LeaseConfigError, match=r"HASH pk \(N\)"):
        await manager.acquire("k", timeout=0)
    await backend.client.delete_table(TableName=name)


class DescribingClient(FakeClient):
    """Answers DescribeTable with a canned description; any other request fails the test."""

    def __init__(self, description: dict[str, Any]) -> None:
        self._description = description

    async def describe_table(self, **_: Any) -> dict[str, Any]:
        return {"Table": self._description}


PLAIN = {
    "TableName": "leases",
    "TableStatus": "ACTIVE",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
}


async def test_an_eventually_consistent_global_table_is_refused() -> None:
    description = PLAIN | {"Replicas": [{"RegionName": "eu-west-1"}]}
    manager = LeaseManager(DescribingClient(description), "leases")
    with pytest.raises(LeaseConfigError, match="both grant a lease"):
        await manager.get("k")


async def test_a_strongly_consistent_global_table_is_accepted() -> None:
    description = PLAIN | {
        "Replicas": [{"RegionName": "eu-west-1"}],
        "MultiRegionConsistency": "STRONG",
    }
    manager = LeaseManager(DescribingClient(description), "leases")
    await manager._engine.ensure_checked()
    assert manager._engine.checked
