"""A lease holder that benchmarks/peer.py kills: ``python -m benchmarks._peer_holder ...``.

Arguments: ``SIDE ENDPOINT TABLE TTL KEY...``. It takes every KEY with aiolease or with
python-dynamodb-lock (SIDE), prints ``held``, and keeps the keys heartbeated until it is
killed, or until its stdin closes (so it never outlives a parent that died).
It also holds the peer's client settings, so the parent and this child use the same ones.
"""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, suppress
from datetime import timedelta
from typing import Any

import anyio
import boto3
from botocore.config import Config
from python_dynamodb_lock.python_dynamodb_lock import (
    DynamoDBLockClient,
)

from aiolease import LeaseManager
from aiolease.testing._emulator import (
    DUMMY_ACCESS_KEY,
    DUMMY_REGION,
    DUMMY_SECRET_KEY,
    new_client,
)

__all__ = [
    "AIOLEASE",
    "PEER",
    "POLL",
    "SKEW",
    "create_peer_table",
    "peer_lock_client",
    "peer_resource",
]

AIOLEASE = "aiolease"
PEER = "python-dynamodb-lock"
POLL = 0.5  # aiolease's poll_interval and the peer's retry_period
SKEW = 1.0  # aiolease's max_clock_skew


def peer_resource(endpoint_url: str, *, pool: int = 10) -> Any:
    """A boto3 DynamoDB resource for the emulator, as the peer wants it."""
    session = boto3.session.Session(
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
        region_name=DUMMY_REGION,
    )
    config = Config(max_pool_connections=pool)
    return session.resource("dynamodb", endpoint_url=endpoint_url, config=config)


def peer_lock_client(resource: Any, table: str, *, ttl: float, executor: Any = None) -> Any:
    """The peer's lock client with settings matching aiolease's (heartbeat ttl/3).

    `safe_period` is the ttl less aiolease's default safety margin (ttl/5). It starts two
    threads (heartbeat sender and checker); `close()` joins them.
    """
    return DynamoDBLockClient(
        resource,
        table_name=table,
        lease_duration=timedelta(seconds=ttl),
        heartbeat_period=timedelta(seconds=ttl / 3),
        safe_period=timedelta(seconds=ttl * 0.8),
        app_callback_executor=executor,
    )


def create_peer_table(endpoint_url: str, table: str) -> None:
    """Create the peer's table (its own schema: ``lock_key`` and ``sort_key``) if missing."""
    client = peer_resource(endpoint_url).meta.client
    with suppress(client.exceptions.ResourceInUseException):  # made by an earlier run
        DynamoDBLockClient.create_dynamodb_table(client, table_name=table)


def _hold_peer(endpoint_url: str, table: str, ttl: float, keys: list[str]) -> None:
    executor = ThreadPoolExecutor(max_workers=1)
    client = peer_lock_client(peer_resource(endpoint_url), table, ttl=ttl, executor=executor)
    try:
        for key in keys:
            client.acquire_lock(key, retry_period=timedelta(seconds=POLL))
        print("held", flush=True)
        sys.stdin.read()  # its heartbeat thread runs meanwhile
    finally:
        client.close()
        executor.shutdown()


async def _hold_aiolease(endpoint_url: str, table: str, ttl: float, keys: list[str]) -> None:
    async with new_client(endpoint_url) as client, AsyncExitStack() as stack:
        manager = LeaseManager(
            client, table, default_ttl=ttl, poll_interval=POLL, max_clock_skew=SKEW
        )
        for key in keys:
            await stack.enter_async_context(manager.lease(key, timeout=0))
        print("held", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)  # heartbeats run meanwhile


def main(argv: list[str]) -> int:
    """Hold the keys until killed."""
    side, endpoint_url, table, ttl, *keys = argv
    logging.getLogger("python_dynamodb_lock").setLevel(logging.CRITICAL)
    if side == PEER:
        _hold_peer(endpoint_url, table, float(ttl), keys)
    else:
        anyio.run(_hold_aiolease, endpoint_url, table, float(ttl), keys)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
