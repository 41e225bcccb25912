"""The public surface: exports, the exception tree, and validation before any request."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)
from support import Backend, FakeClient, new_manager

import aiolease
from aiolease import (
    Lease,
    LeaseConfigError,
    LeaseError,
    LeaseHeldError,
    LeaseInfo,
    LeaseLostError,
    LeaseManager,
    LeaseStoreError,
    LeaseTimeoutError,
    TableNotFoundError,
)
from aiolease.dynamodb import _translate


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(aiolease).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)  # e.g. aiolease.testing
    }
    assert set(aiolease.__all__) == public
    assert set(aiolease.__all__) == {
        "Lease",
        "LeaseConfigError",
        "LeaseError",
        "LeaseEvent",
        "LeaseHeldError",
        "LeaseInfo",
        "LeaseLostError",
        "LeaseManager",
        "LeaseStoreError",
        "LeaseTimeoutError",
        "TableNotFoundError",
    }


def test_version_comes_from_the_package_metadata() -> None:
    assert isinstance(aiolease.__version__, str)
    assert aiolease.__version__


def test_exception_tree() -> None:
    assert issubclass(LeaseHeldError, LeaseError)
    assert issubclass(LeaseTimeoutError, LeaseHeldError)
    assert issubclass(LeaseTimeoutError, TimeoutError)
    assert issubclass(LeaseLostError, LeaseError)
    assert issubclass(LeaseConfigError, LeaseError)
    assert issubclass(LeaseConfigError, ValueError)
    assert issubclass(LeaseStoreError, LeaseError)
    assert issubclass(TableNotFoundError, LeaseStoreError)


def test_timeout_error_keeps_its_message_and_context() -> None:
    error = LeaseTimeoutError("held by b", key="k", owner="b", expires_at=None, retry_after=1.5)
    assert str(error) == "held by b"
    assert (error.key, error.owner, error.expires_at, error.retry_after) == ("k", "b", None, 1.5)


def test_lost_error_carries_key_fence_and_reason() -> None:
    error = LeaseLostError("gone", key="k", fence=7, reason="taken")
    assert (str(error), error.key, error.fence, error.reason) == ("gone", "k", 7, "taken")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"default_ttl": 0}, "default_ttl must be > 0"),
        ({"default_ttl": -1}, "default_ttl must be > 0"),
        ({"default_ttl": "30"}, "default_ttl must be a number"),
        ({"default_ttl": True}, "default_ttl must be a number"),
        ({"default_ttl": math.nan}, "default_ttl must be finite"),
        ({"heartbeat_interval": 0.8}, "heartbeat_interval (0.8 s) must be below half"),
        ({"safety_margin": 1.0}, "must be below the ttl"),
        ({"max_clock_skew": -0.1}, "max_clock_skew must be >= 0"),
        ({"poll_interval": 0}, "poll_interval must be > 0"),
        ({"owner": ""}, "owner must be a non-empty string"),
        ({"sort_key": ("sk",)}, "sort_key must be a tuple"),
        ({"attribute_names": {"nope": "x"}}, "unknown role 'nope'"),
        ({"attribute_names": {"owner": "token"}}, "must be distinct"),
        ({"wall_clock": 3}, "wall_clock must be callable"),
        ({"ttl_buffer": 0}, "ttl_buffer must be > 0"),
        ({"ttl_buffer": 30}, "ttl_buffer must be at least 60 s"),
    ],
)
def test_bad_options_are_refused_on_construction(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(LeaseConfigError) as caught:
        new_manager(FakeClient(), "leases", **options)
    assert fragment in str(caught.value)


def test_durations_accept_timedelta() -> None:
    manager = new_manager(
        FakeClient(), "leases", default_ttl=timedelta(seconds=9), safety_margin=timedelta(seconds=1)
    )
    assert manager.default_ttl == 9.0
    assert manager.safety_margin == 1.0


@pytest.mark.parametrize("table", ["", "ab", "bad name", 5])
def test_bad_table_names_are_refused(table: Any) -> None:
    with pytest.raises(LeaseConfigError, match="table must be a DynamoDB table name"):
        LeaseManager(FakeClient(), table)


def test_a_client_for_another_service_is_refused() -> None:
    class S3Client:
        class meta:  # noqa: N801
            class service_model:  # noqa: N801
                service_name = "s3"

    with pytest.raises(LeaseConfigError, match="a client for 's3'"):
        LeaseManager(S3Client(), "leases")  # type: ignore[call-overload]
    with pytest.raises(LeaseConfigError, match="DynamoDB client"):
        LeaseManager(object(), "leases")  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"key": ""}, "key must not be empty"),
        ({"key": 5}, "key must be a string"),
        ({"key": None}, "key must be a string"),
        ({"key": "é" * 1025}, "2050 bytes in UTF-8"),
        ({"ttl": 0}, "ttl must be > 0"),
        ({"ttl": -3}, "ttl must be > 0"),
        ({"ttl": 0.15}, "must be below half the ttl"),
        ({"timeout": -1}, "timeout must be >= 0"),
        ({"timeout": "soon"}, "timeout must be a number"),
        ({"data": {"x": math.nan}}, "data must be JSON-serialisable"),
        ({"data": object()}, "data must be JSON-serialisable"),
        ({"data": "x" * 400_000}, "store a reference"),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(
    kwargs: dict[str, Any], fragment: str
) -> None:
    manager = new_manager(FakeClient(), "leases", heartbeat_interval=0.1)
    arguments: dict[str, Any] = {"key": "k"} | kwargs
    key = arguments.pop("key")
    with pytest.raises(LeaseConfigError) as caught:
        await manager.acquire(key, **arguments)
    assert fragment in str(caught.value)
    with pytest.raises(LeaseConfigError):
        manager.lease(key, **arguments)


async def test_refresh_and_release_need_a_lease() -> None:
    manager = new_manager(FakeClient(), "leases")
    with pytest.raises(LeaseConfigError, match="expected a Lease"):
        await manager.refresh("k")  # type: ignore[arg-type]
    with pytest.raises(LeaseConfigError, match="expected a Lease"):
        await manager.release(None)  # type: ignore[arg-type]


def test_public_types_are_exported() -> None:
    assert Lease.__module__.startswith("aiolease")
    assert LeaseInfo.__dataclass_fields__.keys() == {"key", "owner", "fence", "expires_at", "data"}


@pytest.mark.parametrize(
    "error",
    [
        NoCredentialsError(),
        UnauthorizedSSOTokenError(),
        TokenRetrievalError(provider="sso", error_msg="expired"),
        NoRegionError(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_credential_and_configuration_errors_cannot_heal(error: Exception) -> None:
    translated = _translate(error, operation="UpdateItem", table="leases")
    assert not translated.transient
    assert "credentials" in str(translated)


@pytest.mark.parametrize(
    ("error", "maybe_applied"),
    [
        (ReadTimeoutError(endpoint_url="http://127.0.0.1"), True),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1"), True),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1"), False),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1"), False),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
    ],
    ids=lambda value: type(value).__name__,
)
def test_transport_errors_are_transient(error: Exception, maybe_applied: bool) -> None:
    translated = _translate(error, operation="UpdateItem", table="leases")
    assert translated.transient
    assert translated.maybe_applied is maybe_applied


async def test_every_entry_point_refuses_bad_input_and_changes_nothing(
    backend: Backend, key: str
) -> None:
    manager = new_manager(backend.client, backend.table)
    lease = await manager.acquire(key, data={"keep": True})
    item_before = await backend.client.get_item(TableName=backend.table, Key={"pk": {"S": key}})
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("acquire empty key", lambda: manager.acquire("")),
        ("acquire ttl 0", lambda: manager.acquire(key, ttl=0)),
        ("acquire bad data", lambda: manager.acquire(key, data={1j})),
        ("refresh NaN data", lambda: manager.refresh(lease, data=math.nan)),
        ("refresh oversized data", lambda: manager.refresh(lease, data="x" * 400_000)),
        ("release bad data", lambda: manager.release(lease, data=object())),
        ("release not a lease", lambda: manager.release(key)),  # type: ignore[arg-type]
        ("break_lease non-string", lambda: manager.break_lease(5)),  # type: ignore[arg-type]
        ("get too long", lambda: manager.get("k" * 3000)),
        ("list non-string prefix", lambda: _drain(manager.list(7))),  # type: ignore[arg-type]
    ]
    for name, call in calls:
        with pytest.raises(LeaseConfigError):
            await call()
        assert lease.held, name
    item_after = await backend.client.get_item(TableName=backend.table, Key={"pk": {"S": key}})
    assert item_after["Item"] == item_before["Item"]
    assert await manager.release(lease)


async def _drain(iterator: AsyncIterator[object]) -> None:
    async for _ in iterator:
        pass
