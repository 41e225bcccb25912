"""Writes DynamoDB applied but whose answer was lost, and requests that never finish.

Faults come from two places: above the SDK (a client wrapper that performs the call and
then raises a read timeout) and below it (a loopback proxy that forwards the request and
drops the answer, so botocore's own retries resend it, as happens in production).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from support import TTL, Backend, new_manager

from aiolease import LeaseConfigError, LeaseHeldError, LeaseLostError, LeaseStoreError
from aiolease.testing import (
    Fault,
    FaultContext,
    FaultyClient,
    LossyProxy,
    Perform,
    SkewedClock,
    drop_response,
    fail_before,
    hang,
    latency,
    server_error,
)


def sdk_retries() -> dict[str, object]:
    """botocore's standard retries, as in production (a fresh dict: botocore edits it)."""
    return {"retries": {"total_max_attempts": 4, "mode": "standard"}}


async def test_an_acquire_whose_answer_was_lost_still_gets_the_lease(
    backend: Backend, key: str
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    client.plan("update_item", drop_response(), times=1)
    started = anyio.current_time()

    lease = await manager.acquire(key, timeout=5)

    # It did not wait out its own lease: the retry recognised our own token.
    assert anyio.current_time() - started < TTL
    assert lease.held
    info = await manager.get(key)
    assert info is not None
    assert info.fence == lease.fence
    outcomes = [c.outcome for c in client.calls if c.operation == "update_item"]
    assert outcomes[0] != "ok"
    await manager.release(lease)


async def test_a_refresh_whose_answer_was_lost_keeps_the_lease(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    lease = await manager.acquire(key, timeout=0)
    client.plan("update_item", drop_response(), times=1)
    await manager.refresh(lease)
    assert lease.held
    await manager.refresh(lease)
    assert await manager.release(lease) is True


async def test_a_release_whose_answer_was_lost_reports_released(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    lease = await manager.acquire(key, timeout=0)
    client.plan("update_item", drop_response(), times=1)
    assert await manager.release(lease) is True
    assert await manager.get(key) is None


async def test_a_retried_release_never_touches_the_next_holders_lease(
    backend: Backend, key: str
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    successor_manager = new_manager(backend.client, backend.table, owner="successor")
    lease = await manager.acquire(key, timeout=0)
    successor = None

    async def drop_then_let_someone_in(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
        nonlocal successor
        await perform()
        successor = await successor_manager.acquire(key, timeout=0)
        raise ConnectionResetError("answer lost")

    client.plan("update_item", _Custom(drop_then_let_someone_in), times=1)
    assert await manager.release(lease) is True  # our first attempt did apply
    assert successor is not None
    info = await successor_manager.get(key)
    assert info is not None
    assert (info.owner, info.fence) == ("successor", successor.fence)
    await successor_manager.release(successor)


class _Custom(Fault):
    """A one-off fault written inline by a test."""

    def __init__(self, function: Callable[[Perform, FaultContext], Awaitable[Any]]) -> None:
        self._function = function

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        return await self._function(perform, ctx)


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
        manager = new_manager(client, backend.table)
        await manager.get(key)
        if operation == "acquire":
            proxy.drop_response("UpdateItem", times=1)
            started = anyio.current_time()
            lease = await manager.acquire(key, timeout=5)
            assert anyio.current_time() - started < TTL
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


async def test_a_cancelled_acquire_undoes_a_write_that_may_have_applied(
    backend: Backend, key: str
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    client.plan("update_item", latency(5, after=True), times=1)  # applied, answer is slow

    with anyio.move_on_after(0.3):
        await manager.acquire(key, ttl=30)

    # The shielded undo released it: the key is free now, not in 30 s.
    assert await manager.get(key) is None
    other = new_manager(backend.client, backend.table)
    lease = await other.acquire(key, timeout=0)
    await other.release(lease)


async def test_an_acquire_answered_after_its_lease_ran_out_is_not_handed_out(
    backend: Backend, key: str
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table, safety_margin=0.1)
    ttl = 0.6
    client.plan("update_item", latency(ttl + 0.1, after=True), times=1)
    started = anyio.current_time()

    lease = await manager.acquire(key, ttl=ttl, timeout=5)

    # The late grant was not handed out; the lease returned came from a later attempt.
    attempts = [c for c in client.calls if c.operation == "update_item"]
    assert len(attempts) >= 2
    assert anyio.current_time() - started >= ttl
    assert lease.remaining > 0
    assert lease.held
    await manager.release(lease)


async def test_a_timeout_that_ends_on_store_failures_raises_lease_store_error(
    backend: Backend, key: str
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    await manager.get(key)
    client.plan("update_item", fail_before(), probability=1.0)
    with pytest.raises(LeaseStoreError) as caught:
        await manager.acquire(key, timeout=0.4)
    assert not isinstance(caught.value, LeaseHeldError)
    assert caught.value.transient
    assert caught.value.__cause__ is not None
    assert len(client.calls_of("update_item")) >= 3  # retried with backoff
    client.clear()


async def test_a_hung_store_does_not_stretch_a_finite_timeout(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table, poll_interval=0.1, release_timeout=0.3)
    await manager.get(key)
    client.plan("update_item", hang(), probability=1.0)
    started = anyio.current_time()
    with pytest.raises(LeaseStoreError, match="no answer"):
        await manager.acquire(key, timeout=0.5)
    # The timeout, plus the shielded undo of the unanswered write (bounded by
    # release_timeout), plus scheduling slack.
    assert anyio.current_time() - started < 0.5 + 0.1 + 0.3 + 0.5
    client.clear()


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


def applied_then_lost(delay: float, error: Exception | None = None) -> Fault:
    """Apply the write, keep the caller waiting `delay`, then lose the answer."""

    async def fault(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
        await perform()
        await anyio.sleep(delay)
        raise error or ReadTimeoutError(endpoint_url="http://127.0.0.1")

    return _Custom(fault)


async def test_after_a_lost_acquire_answer_the_deadline_counts_from_the_first_attempt(
    backend: Backend, key: str
) -> None:
    client = FaultyClient(backend.client)
    ttl, margin, lag = 2.0, 0.2, 0.5
    manager = new_manager(client, backend.table, safety_margin=margin)
    await manager.get(key)
    client.plan("update_item", applied_then_lost(lag), times=1)
    first_sent = anyio.current_time()
    lease = await manager.acquire(key, ttl=ttl, timeout=5)
    # A waiter may have seen the version written by the first attempt at once.
    assert anyio.current_time() + lease.remaining <= first_sent + ttl - margin + 0.01
    await manager.release(lease)


async def test_after_a_lost_refresh_answer_the_deadline_counts_from_the_first_attempt(
    backend: Backend, key: str
) -> None:
    client = FaultyClient(backend.client)
    ttl, margin, lag = 2.0, 0.2, 0.5
    manager = new_manager(client, backend.table, safety_margin=margin)
    lease = await manager.acquire(key, ttl=ttl, timeout=0)
    client.plan("update_item", applied_then_lost(lag), times=1)
    first_sent = anyio.current_time()
    await manager.refresh(lease)
    assert anyio.current_time() + lease.remaining <= first_sent + ttl - margin + 0.01
    await manager.release(lease)


@pytest.mark.backends("ddblocal")
async def test_a_version_rule_takeover_never_overlaps_a_holder_after_lost_answers(
    backend: Backend, key: str
) -> None:
    ttl, margin = 1.5, 0.2
    client = FaultyClient(backend.client)
    holder = new_manager(client, backend.table, safety_margin=margin, heartbeat_interval=0.3)
    # Its clock is an hour behind: only the version rule can let it take over.
    waiter = new_manager(backend.client, backend.table, wall_clock=SkewedClock(-3600))
    taken_at: list[float] = []
    holder_end: list[float] = []

    async def wait_for_it() -> None:
        lease = await waiter.acquire(key, ttl=ttl, timeout=10 * ttl)
        taken_at.append(anyio.current_time())
        await waiter.release(lease)

    async with anyio.create_task_group() as tg:
        with pytest.raises(LeaseLostError):
            async with holder.lease(key, ttl=ttl) as lease:
                tg.start_soon(wait_for_it)
                # The next refresh applies but its answer is lost; the retry succeeds; then
                # DynamoDB stops answering the holder altogether.
                client.plan("update_item", applied_then_lost(0.5), times=1)
                await anyio.sleep(0.3 + 0.5 + 0.3)
                client.plan("update_item", hang(), probability=1.0)
                try:
                    await anyio.sleep(10 * ttl)
                finally:
                    holder_end.append(anyio.current_time())
                    assert lease.remaining == 0
    client.clear()
    assert taken_at
    assert holder_end[0] <= taken_at[0]


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


async def test_release_survives_a_plain_asyncio_cancellation(backend: Backend, key: str) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    lease = await manager.acquire(key, ttl=30, timeout=0)
    client.plan("update_item", latency(0.3), times=1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await manager.release(lease)
    assert await manager.get(key) is None
    assert not lease.held


@pytest.mark.parametrize("cycles", [1, 3])
async def test_a_retried_release_is_recognised_after_other_holders_came_and_went(
    backend: Backend, key: str, cycles: int
) -> None:
    client = FaultyClient(backend.client)
    manager = new_manager(client, backend.table)
    other = new_manager(backend.client, backend.table, owner="other")
    lease = await manager.acquire(key, timeout=0)

    async def apply_let_others_cycle_then_lose(perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG001
        await perform()  # our release applies...
        for _ in range(cycles):  # ...other holders come and go...
            theirs = await other.acquire(key, timeout=0)
            await other.release(theirs, data={"n": 1})
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1")  # ...and our answer is lost

    client.plan("update_item", _Custom(apply_let_others_cycle_then_lose), times=1)
    assert await manager.release(lease, data={"n": 1}) is True
    again = await other.acquire(key, timeout=0)
    assert again.data == {"n": 1}
    await other.release(again)
