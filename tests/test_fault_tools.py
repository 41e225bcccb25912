"""The fault tools do what they say, so that the safety tests built on them mean something."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from aiolease.testing import (
    FaultyClient,
    LossyProxy,
    SkewedClock,
    drop_response,
    fail_before,
    hang,
    latency,
    server_error,
    throttle,
)

if TYPE_CHECKING:
    from support import Backend
    from types_aiobotocore_dynamodb import DynamoDBClient

EMULATORS = ("moto", "dynalite", "ddblocal")


def _item(pk: str, **attrs: int) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": pk}}
    item.update({name: {"N": str(value)} for name, value in attrs.items()})
    return item


async def _counter(client: DynamoDBClient, table: str, pk: str) -> int | None:
    got = await client.get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True)
    if "Item" not in got:
        return None
    return int(got["Item"]["n"]["N"])


async def _bump(client: DynamoDBClient, table: str, pk: str) -> Any:
    return await client.update_item(
        TableName=table,
        Key={"pk": {"S": pk}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )


# --- FaultyClient ------------------------------------------------------------------------


async def test_passes_through_and_records(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    assert client.meta is backend.client.meta
    assert client.exceptions is backend.client.exceptions
    await client.put_item(TableName=backend.table, Item=_item(key, n=1))
    assert await _counter(client, backend.table, key) == 1
    assert [(c.operation, c.outcome, c.fault, c.sent) for c in client.calls] == [
        ("put_item", "ok", None, True),
        ("get_item", "ok", None, True),
    ]
    assert client.calls[0].params["Item"] == _item(key, n=1)


async def test_records_real_errors(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    with pytest.raises(ClientError) as caught:
        await client.put_item(
            TableName=backend.table, Item=_item(key), ConditionExpression="attribute_exists(pk)"
        )
    assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert client.calls[0].outcome == "error:ConditionalCheckFailedException"


async def test_drop_response_applies_the_write_but_raises(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    client.plan("put_item", drop_response())
    with pytest.raises(ReadTimeoutError):
        await client.put_item(TableName=backend.table, Item=_item(key, n=7))
    assert await _counter(backend.client, backend.table, key) == 7
    assert client.calls[0].outcome == "dropped:ok"
    assert client.calls[0].sent
    # Planned once: the next call goes through.
    await client.put_item(TableName=backend.table, Item=_item(key, n=8))
    assert client.calls[1].outcome == "ok"


async def test_drop_response_hides_a_failed_condition(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    client.plan("PutItem", drop_response())
    with pytest.raises(ReadTimeoutError):
        await client.put_item(
            TableName=backend.table, Item=_item(key), ConditionExpression="attribute_exists(pk)"
        )
    assert client.calls[0].outcome == "dropped:error:ConditionalCheckFailedException"


async def test_fail_before_sends_nothing(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    client.plan("put_item", fail_before())
    with pytest.raises(EndpointConnectionError):
        await client.put_item(TableName=backend.table, Item=_item(key, n=1))
    assert await _counter(backend.client, backend.table, key) is None
    assert client.calls[0].outcome == "fault:fail_before"
    assert not client.calls[0].sent


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
async def test_throttle_raises_a_botocore_shaped_error(
    backend: Backend, key: str, code: str
) -> None:
    client = FaultyClient(backend.client)
    client.plan("update_item", throttle(code))
    with pytest.raises(ClientError) as caught:
        await _bump(client, backend.table, key)
    error = caught.value
    assert error.response["Error"]["Code"] == code
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.operation_name == "UpdateItem"
    assert isinstance(error, getattr(backend.client.exceptions, code))
    assert code in str(error)
    assert await _counter(backend.client, backend.table, key) is None
    assert client.calls[0].outcome == f"fault:throttle:{code}"


def test_throttle_refuses_non_throttling_codes() -> None:
    with pytest.raises(ValueError):
        throttle("ConditionalCheckFailedException")


@pytest.mark.parametrize(
    ("status", "code"), [(500, "InternalServerError"), (503, "ServiceUnavailable")]
)
async def test_server_error(backend: Backend, key: str, status: int, code: str) -> None:
    client = FaultyClient(backend.client)
    client.plan("get_item", server_error(status))
    with pytest.raises(ClientError) as caught:
        await _counter(client, backend.table, key)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert not client.calls[0].sent


async def test_latency_before_and_after(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    client.plan("put_item", latency(0.3))
    started = time.monotonic()
    await client.put_item(TableName=backend.table, Item=_item(key, n=1))
    assert time.monotonic() - started >= 0.3

    # With after=True the write lands before the caller hears back.
    client.plan("put_item", latency(0.5, after=True))
    seen: list[int | None] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: client.put_item(TableName=backend.table, Item=_item(key, n=2)))
        await anyio.sleep(0.3)
        seen.append(await _counter(backend.client, backend.table, key))
        assert client.calls[-1].outcome == "pending"
    assert seen == [2]
    assert client.calls[-1].outcome == "ok"


async def test_hang_is_cancellable(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    client.plan("put_item", hang())
    with anyio.move_on_after(0.2) as scope:
        await client.put_item(TableName=backend.table, Item=_item(key, n=1))
    assert scope.cancelled_caught
    assert client.calls[0].outcome == "cancelled"
    assert not client.calls[0].sent
    assert await _counter(backend.client, backend.table, key) is None


async def test_plan_times_and_any_operation(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    client.plan("*", fail_before(), times=2)
    with pytest.raises(EndpointConnectionError):
        await client.put_item(TableName=backend.table, Item=_item(key, n=1))
    with pytest.raises(EndpointConnectionError):
        await _counter(client, backend.table, key)
    await client.put_item(TableName=backend.table, Item=_item(key, n=1))
    assert [c.outcome for c in client.calls] == ["fault:fail_before"] * 2 + ["ok"]


async def test_plans_are_consumed_in_order(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    client.plan("update_item", throttle())
    client.plan("update_item", fail_before())
    for _ in range(3):
        with contextlib.suppress(ClientError, EndpointConnectionError):
            await _bump(client, backend.table, key)
    assert [c.outcome for c in client.calls] == [
        "fault:throttle:ProvisionedThroughputExceededException",
        "fault:fail_before",
        "ok",
    ]
    client.plan("update_item", throttle())
    client.clear()
    await _bump(client, backend.table, key)
    assert await _counter(backend.client, backend.table, key) == 2


async def test_random_faults_follow_the_seed(backend: Backend, key: str) -> None:
    patterns = []
    for _ in range(2):
        client = FaultyClient(backend.client)
        rule = client.plan("get_item", fail_before(), probability=0.5, seed=1234)
        for _ in range(20):
            with contextlib.suppress(ClientError, EndpointConnectionError):
                await _counter(client, backend.table, key)
        patterns.append([c.outcome for c in client.calls])
        assert rule.fired == patterns[-1].count("fault:fail_before")
    assert patterns[0] == patterns[1]
    assert 0 < patterns[0].count("fault:fail_before") < 20


async def test_times_caps_the_calls_a_fault_hits(backend: Backend, key: str) -> None:
    outcomes = {}
    for times in ("auto", 2, None):
        client = FaultyClient(backend.client)
        client.plan("get_item", fail_before(), times=times)
        for _ in range(5):
            with contextlib.suppress(EndpointConnectionError):
                await _counter(client, backend.table, key)
        outcomes[times] = [c.outcome for c in client.calls].count("fault:fail_before")
    assert outcomes == {"auto": 1, 2: 2, None: 5}
    always = FaultyClient(backend.client)
    always.plan("get_item", fail_before(), probability=1.0)  # "auto" with a probability
    for _ in range(5):
        with contextlib.suppress(EndpointConnectionError):
            await _counter(always, backend.table, key)
    assert [c.outcome for c in always.calls].count("fault:fail_before") == 5


def test_plan_rejects_unknown_operations() -> None:
    client = FaultyClient(object())
    with pytest.raises(ValueError):
        client.plan("list_backups", fail_before())
    with pytest.raises(ValueError):
        client.plan("get_item", fail_before(), probability=1.5)
    with pytest.raises(ValueError, match="times"):
        client.plan("get_item", fail_before(), times=0)


# --- LossyProxy --------------------------------------------------------------------------


@pytest.mark.backends(*EMULATORS)
async def test_proxy_forwards_keep_alive_requests(backend: Backend, key: str) -> None:
    assert backend.endpoint_url is not None
    async with (
        LossyProxy(backend.endpoint_url) as proxy,
        backend.new_client(endpoint_url=proxy.endpoint_url) as client,
    ):
        for _ in range(5):
            await _bump(client, backend.table, key)
        assert await _counter(client, backend.table, key) == 5
        assert proxy.forwarded["UpdateItem"] == 5
        assert proxy.forwarded["GetItem"] == 1
        assert proxy.received == proxy.forwarded


@pytest.mark.backends(*EMULATORS)
async def test_proxy_drop_without_retries_loses_the_answer(backend: Backend, key: str) -> None:
    assert backend.endpoint_url is not None
    async with (
        LossyProxy(backend.endpoint_url) as proxy,
        backend.new_client(endpoint_url=proxy.endpoint_url) as client,
    ):
        proxy.drop_response("UpdateItem")
        with pytest.raises(ConnectionClosedError):
            await _bump(client, backend.table, key)
        assert proxy.forwarded["UpdateItem"] == 1
        assert await _counter(client, backend.table, key) == 1


@pytest.mark.backends(*EMULATORS)
async def test_proxy_drop_makes_botocore_retry(backend: Backend, key: str) -> None:
    assert backend.endpoint_url is not None
    async with (
        LossyProxy(backend.endpoint_url) as proxy,
        backend.new_client(
            endpoint_url=proxy.endpoint_url, retries={"max_attempts": 3, "mode": "standard"}
        ) as client,
    ):
        proxy.drop_response("UpdateItem", times=2)
        answer = await _bump(client, backend.table, key)
        assert answer["ResponseMetadata"]["RetryAttempts"] == 2
        assert proxy.forwarded["UpdateItem"] == 3
        # Every forwarded request was applied: the retries doubled the increment.
        assert await _counter(backend.client, backend.table, key) == 3


@pytest.mark.backends(*EMULATORS)
async def test_proxy_stall_never_answers(backend: Backend, key: str) -> None:
    assert backend.endpoint_url is not None
    async with (
        LossyProxy(backend.endpoint_url) as proxy,
        backend.new_client(endpoint_url=proxy.endpoint_url, read_timeout=0.5) as client,
    ):
        proxy.stall("UpdateItem")
        with pytest.raises(ReadTimeoutError):
            await _bump(client, backend.table, key)
        assert proxy.forwarded["UpdateItem"] == 0
        assert proxy.received["UpdateItem"] == 1
        # Stalled requests can also be abandoned by cancellation.
        proxy.stall("GetItem")
        with anyio.move_on_after(0.3) as scope:
            await _counter(client, backend.table, key)
        assert scope.cancelled_caught
        assert await _counter(backend.client, backend.table, key) is None


@pytest.mark.backends(*EMULATORS)
@pytest.mark.parametrize(
    ("status", "code"), [(500, "InternalServerError"), (503, "ServiceUnavailable")]
)
async def test_proxy_status_answers_errors(
    backend: Backend, key: str, status: int, code: str
) -> None:
    assert backend.endpoint_url is not None
    async with (
        LossyProxy(backend.endpoint_url) as proxy,
        backend.new_client(endpoint_url=proxy.endpoint_url) as client,
    ):
        proxy.status("UpdateItem", code=status)
        with pytest.raises(ClientError) as caught:
            await _bump(client, backend.table, key)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert caught.value.response["Error"]["Code"] == code
        assert proxy.forwarded["UpdateItem"] == 0
        # The connection stays usable.
        await _bump(client, backend.table, key)
        assert await _counter(client, backend.table, key) == 1


@pytest.mark.backends(*EMULATORS)
async def test_proxy_status_is_retried_by_botocore(backend: Backend, key: str) -> None:
    assert backend.endpoint_url is not None
    async with (
        LossyProxy(backend.endpoint_url) as proxy,
        backend.new_client(
            endpoint_url=proxy.endpoint_url, retries={"max_attempts": 3, "mode": "standard"}
        ) as client,
    ):
        proxy.status("*", code=500, times=2)
        answer = await _bump(client, backend.table, key)
        assert answer["ResponseMetadata"]["RetryAttempts"] == 2
        assert proxy.forwarded["UpdateItem"] == 1
        assert await _counter(backend.client, backend.table, key) == 1


@pytest.mark.backends(*EMULATORS)
async def test_proxy_closes_everything_on_exit(backend: Backend) -> None:
    assert backend.endpoint_url is not None
    async with LossyProxy(backend.endpoint_url) as proxy:
        host, port = "127.0.0.1", int(proxy.endpoint_url.rsplit(":", 1)[1])
        proxy.stall("*")
        _, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n"
            b"Content-Length: 2\r\n\r\n{}"
        )
        await writer.drain()
        for _ in range(100):
            if proxy.received["ListTables"]:
                break
            await anyio.sleep(0.01)
        assert proxy.received["ListTables"] == 1
        assert proxy._tasks
    assert not proxy._tasks
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection(host, port)


# --- SkewedClock -------------------------------------------------------------------------


def test_skewed_clock() -> None:
    clock = SkewedClock(offset=10.0)
    assert abs(clock() - (time.time() + 10.0)) < 1.0
    clock.jump(-25.0)
    assert clock.offset == -15.0
    assert abs(clock() - (time.time() - 15.0)) < 1.0
    clock.offset = 0.0
    assert abs(clock() - time.time()) < 1.0


@pytest.mark.backends("moto")
async def test_backends_marker_restricts(backend: Backend) -> None:
    assert backend.name == "moto"
