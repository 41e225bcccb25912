"""The IAM policies in docs/iam/ grant exactly the DynamoDB actions aiolease uses."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from support import Backend, new_manager

from aiolease.testing import FaultyClient

DOCS = Path(__file__).resolve().parents[1] / "docs" / "iam"


def actions(policy: str) -> set[str]:
    document: dict[str, Any] = json.loads((DOCS / policy).read_text())
    assert document["Version"] == "2012-10-17"
    found: set[str] = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement["Resource"].startswith("arn:aws:dynamodb:")
        assert ":table/" in statement["Resource"]
        found.update(statement["Action"])
    return found


def used(client: FaultyClient) -> set[str]:
    return {
        "dynamodb:" + "".join(part.title() for part in call.operation.split("_"))
        for call in client.calls
    }


async def test_the_lease_user_policy_covers_every_lease_operation(
    backend: Backend, key: str
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    lease = await manager.acquire(key, timeout=0)
    await manager.refresh(lease)
    await manager.get(key)
    _ = [info async for info in manager.list(prefix=key)]
    await manager.release(lease)
    await manager.break_lease(key)
    assert used(client) == actions("lease-user.json")


async def test_the_table_admin_policy_covers_create_table(backend: Backend) -> None:
    client = FaultyClient(backend.client)
    name = f"t-{uuid.uuid4().hex[:12]}"
    await new_manager(client, name).create_table()
    granted = actions("table-admin.json")
    assert used(client) <= granted
    if backend.name != "dynalite":  # dynalite has no TTL, so it never asks
        assert used(client) == granted
    await backend.client.delete_table(TableName=name)
