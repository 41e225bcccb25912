"""Faults only a DynamoDB client shows: botocore's errors and answers lost below the SDK.

A client wrapper fails calls above the SDK with the errors botocore raises; a loopback
proxy forwards a request and drops its answer, so botocore's own retries resend it, as
happens in production. The faults every store shares are in ``test_ambiguity.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from support import Backend, new_manager

from aiolease import LeaseConfigError, LeaseStoreError
from aiolease.testing import Fault, FaultContext, FaultyClient, LossyProxy, Perform, server_error

SDK_RETRY_TTL = 6.0  # above botocore's first-retry backoff (at most 1 s), with slack


def sdk_retries() -> dict[str, object]:
    """botocore's standard retries, as in production (a fresh dict: botocore edits it)."""
    return {"retries": {"total_max_attempts": 4, "mode": "standard"}}


class _Custom(Fault):
    """A one-off fault written inline by a test."""

    def __init__(self, function: Callable[[Perform, FaultContext], Awaitable[Any]]) -> None:
        self._function = function

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        return await self._function(perform, ctx)


def applied_then_lost(delay: float, error: Exception | None = None) -> Fault:
    """Apply the write, keep the caller waiting `delay`, then lose the answer."""

    async def fault(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
        await perform()
        await anyio.sleep(delay)
        raise error or ReadTimeoutError(endpoint_url="http://127.0.0.1")

    return _Custom(fault)


@pytest.mark.parametrize("operation", ["acquire", "refresh", "release"])
async def test_answers_dropped_below_the_sdk_are_resolved_by_its_own_retries(
    backend: Backend, key: str, operation: str
) -> None:
    upstream = backend.endpoint_url
    assert upstream is not None
    async with (
        LossyProxy(upstream) as proxy,
        backend.new_client(endpoint_url=proxy.endpoint_url, **sdk_retries()) as client,
    ):
        # botocore's standard mode waits up to 1 s before its first retry: the lease must
        # outlast that (and a loaded machine), or the retry would land past its deadline.
        manager = new_manager(client, backend.table, default_ttl=SDK_RETRY_TTL)
        await manager.get(key)
        if operation == "acquire":
            proxy.drop_response("UpdateItem", times=1)
            started = anyio.current_time()
            lease = await manager.acquire(key, timeout=5)
            assert anyio.current_time() - started < SDK_RETRY_TTL  # not its own lease's wait
        else:
            lease = await manager.acquire(key, timeout=0)
            proxy.drop_response("UpdateItem", times=1)
        if operation == "refresh":
            await manager.refresh(lease)
            assert lease.held
        before = proxy.forwarded["UpdateItem"]
        assert await manager.release(lease) is True
        assert proxy.forwarded["UpdateItem"] >= before + 1
        assert await manager.get(key) is None
        # Each dropped answer made botocore send the same request again.
        assert proxy.forwarded["UpdateItem"] >= 3


async def test_errors_that_cannot_heal_are_raised_at_once(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    await manager.get(key)

    async def access_denied(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
        response: Any = {
            "Error": {"Code": "AccessDeniedException", "Message": "not allowed"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        raise ClientError(response, "UpdateItem")

    client.plan("update_item", _Custom(access_denied), probability=1.0)
    started = anyio.current_time()
    with pytest.raises(LeaseStoreError, match="AccessDeniedException") as caught:
        await manager.acquire(key)  # timeout=None would otherwise wait forever
    assert anyio.current_time() - started < 1
    assert not caught.value.transient
    assert len(client.calls_of("update_item")) == 1
    client.clear()


async def test_a_transient_failure_of_the_first_table_check_is_retried_within_the_timeout(
    backend: Backend, key: str
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    client.plan("describe_table", server_error(503), times=2)
    lease = await manager.acquire(key, timeout=5)
    assert len(client.calls_of("describe_table")) == 3
    assert await manager.release(lease)

    once = new_manager(client, backend.table)
    client.plan("describe_table", server_error(503), times=1)
    with pytest.raises(LeaseStoreError, match="server error") as caught:
        await once.acquire(key, timeout=0)  # one try means one try, of the check too
    assert caught.value.transient


async def test_a_table_with_the_wrong_key_schema_is_refused(backend: Backend) -> None:
    manager = new_manager(backend.client, backend.table, attribute_names={"key": "id"})
    with pytest.raises(LeaseConfigError, match="key schema"):
        await manager.get("k")


async def test_a_transient_error_after_an_applied_write_is_undone(
    backend: Backend, key: str
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    await manager.get(key)
    # botocore retried an applied write, and its final error says "could not connect".
    lost = EndpointConnectionError(endpoint_url="http://127.0.0.1")
    client.plan("update_item", applied_then_lost(0.0, lost), times=1)
    with pytest.raises(LeaseStoreError):
        await manager.acquire(key, ttl=30, timeout=0)
    assert await manager.get(key) is None  # undone, not left to lapse in 30 s
