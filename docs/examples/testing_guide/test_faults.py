"""Your lease-handling code under the faults that matter, injected with FaultyClient."""

from typing import Any

import anyio
import pytest

from aiolease import LeaseHeldError, LeaseLostError, LeaseManager, LeaseStoreError
from aiolease.testing import (
    FaultyClient,
    LocalDynamoDB,
    LossyProxy,
    SkewedClock,
    drop_response,
    fail_before,
    hang,
    latency,
    server_error,
    throttle,
)

written: list[int] = []


async def write_report(*, fence: int) -> None:
    written.append(fence)


# --8<-- [start:code]
async def run_job(manager: LeaseManager, key: str) -> int:
    async with manager.lease(key) as lease:
        lease.ensure_held()
        await write_report(fence=lease.fence)
        return lease.fence
        # --8<-- [end:code]


# --8<-- [start:fast]
FAST: dict[str, Any] = {
    "default_ttl": 1.5,
    "max_clock_skew": 0.2,
    "poll_interval": 0.05,
    "backoff": 0.05,
    "release_timeout": 0.5,
}
# --8<-- [end:fast]


async def test_planning_faults(aiolease_dynamodb: LocalDynamoDB) -> None:
    env = aiolease_dynamodb
    # --8<-- [start:plan]
    client = FaultyClient(env.client)
    manager = env.manager(client=client, **FAST)
    client.plan("update_item", drop_response())  # the next UpdateItem
    client.plan("UpdateItem", throttle(), times=3)  # the next three
    client.plan("*", server_error(503), probability=0.1, seed=7)  # 10 % of all calls
    # --8<-- [end:plan]
    assert await run_job(manager, "job:0") > 0
    assert client.calls_of("update_item")[0].outcome == "dropped:ok"


# --8<-- [start:drop]
async def test_job_survives_a_lost_response(aiolease_dynamodb: LocalDynamoDB) -> None:
    client = FaultyClient(aiolease_dynamodb.client)
    client.plan("update_item", drop_response())  # the acquire's write
    assert await run_job(aiolease_dynamodb.manager(client=client, **FAST), "job:1") > 0
    assert client.calls_of("update_item")[0].outcome == "dropped:ok"
    # --8<-- [end:drop]


async def test_an_unreachable_store(aiolease_dynamodb: LocalDynamoDB) -> None:
    client = FaultyClient(aiolease_dynamodb.client)
    manager = aiolease_dynamodb.manager(client=client, **FAST)
    # --8<-- [start:fail-before]
    client.plan("*", fail_before(), probability=1.0)  # DynamoDB unreachable from now on
    with pytest.raises(LeaseStoreError):
        await manager.acquire("job:2", timeout=1)
    # --8<-- [end:fail-before]


# --8<-- [start:throttle]
async def test_job_survives_throttling(aiolease_dynamodb: LocalDynamoDB) -> None:
    client = FaultyClient(aiolease_dynamodb.client)
    client.plan("update_item", throttle(), times=3)
    assert await run_job(aiolease_dynamodb.manager(client=client, **FAST), "job:3") > 0
    # --8<-- [end:throttle]


async def test_job_survives_a_flaky_store(aiolease_dynamodb: LocalDynamoDB) -> None:
    client = FaultyClient(aiolease_dynamodb.client)
    # --8<-- [start:server-error]
    client.plan("update_item", server_error(503), probability=0.2, seed=1)
    # --8<-- [end:server-error]
    assert await run_job(aiolease_dynamodb.manager(client=client, **FAST), "job:7") > 0


async def test_a_late_answer_still_leaves_time(
    aiolease_dynamodb: LocalDynamoDB,
) -> None:
    client = FaultyClient(aiolease_dynamodb.client)
    # --8<-- [start:latency]
    client.plan("update_item", latency(0.5, after=True))
    # --8<-- [end:latency]
    assert await run_job(aiolease_dynamodb.manager(client=client, **FAST), "job:8") > 0


# --8<-- [start:hang]
async def test_body_is_cancelled_when_refreshes_hang(
    aiolease_dynamodb: LocalDynamoDB,
) -> None:
    client = FaultyClient(aiolease_dynamodb.client)
    manager = aiolease_dynamodb.manager(client=client, **FAST)
    with pytest.raises(LeaseLostError) as lost:
        async with manager.lease("job:4"):
            client.plan("update_item", hang(), times=None)  # every refresh from now on
            await anyio.sleep(30)  # cancelled long before
    assert lost.value.reason == "expired"
    # --8<-- [end:hang]


# --8<-- [start:proxy]
async def test_job_with_sdk_retries_over_a_lossy_network(
    aiolease_dynamodb: LocalDynamoDB,
) -> None:
    env = aiolease_dynamodb
    retries = {"total_max_attempts": 3, "mode": "standard"}
    async with (
        LossyProxy(env.endpoint_url) as proxy,
        env.new_client(endpoint_url=proxy.endpoint_url, retries=retries) as client,
    ):
        proxy.drop_response("UpdateItem")
        assert await run_job(env.manager(client=client, **FAST), "job:5") > 0
        # --8<-- [end:proxy]


# --8<-- [start:skew]
async def test_skew_inside_the_bound_is_harmless(
    aiolease_dynamodb: LocalDynamoDB,
) -> None:
    env = aiolease_dynamodb
    holder = env.manager(default_ttl=2, max_clock_skew=1)
    ahead = env.manager(default_ttl=2, max_clock_skew=1, wall_clock=SkewedClock(0.9))
    async with holder.lease("job:6"):
        with pytest.raises(LeaseHeldError):
            await ahead.acquire("job:6", timeout=0)
        # --8<-- [end:skew]
