"""Fault injection at the client: :class:`FaultyClient` and the faults it applies.

A fault never fakes ``ConditionalCheckFailedException``: that outcome must come from the
database itself, so a test can never "prove" a behaviour DynamoDB would not produce.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any, ClassVar, Final

from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from ._fault_plans import Call, Fault, FaultContext, FaultPlan, Perform, Where, describe_error

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from types_aiobotocore_dynamodb import DynamoDBClient

    _ClientBase = DynamoDBClient
else:
    _ClientBase = object

__all__ = [
    "INTERCEPTED_OPERATIONS",
    "THROTTLING_CODES",
    "FaultyClient",
    "drop_response",
    "fail_before",
    "server_error",
    "throttle",
]

#: The client methods :class:`FaultyClient` intercepts (all others pass straight through).
INTERCEPTED_OPERATIONS: Final = frozenset(
    {
        "get_item",
        "put_item",
        "update_item",
        "delete_item",
        "scan",
        "query",
        "describe_table",
        "create_table",
        "update_time_to_live",
        "describe_time_to_live",
        "batch_get_item",
        "batch_write_item",
        "transact_get_items",
        "transact_write_items",
    }
)

#: The error codes :func:`throttle` accepts: DynamoDB's throttling errors.
THROTTLING_CODES: Final = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
_SERVER_ERROR_CODES: Final = {500: "InternalServerError", 503: "ServiceUnavailable"}
_SERVER_ERROR_MESSAGES: Final = {500: "Internal server error", 503: "Service Unavailable"}


def _snake_case(operation: str) -> str:
    """Return ``update_item`` for ``UpdateItem`` or ``update_item``; ``*`` stays ``*``."""
    if operation == "*" or operation.islower():
        return operation
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


# --- faults ------------------------------------------------------------------------------


class DropResponse(Fault):
    """Perform the real call, then raise ``ReadTimeoutError`` as if the answer was lost."""

    name = "drop_response"
    acts_on: ClassVar[frozenset[Where]] = frozenset({"client"})

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        ctx.call.sent = True
        try:
            await perform()
        except Exception as exc:  # noqa: BLE001 - any answer is lost, errors included
            ctx.call.outcome = f"dropped:{describe_error(exc)}"
        else:
            ctx.call.outcome = "dropped:ok"
        raise ReadTimeoutError(endpoint_url=ctx.endpoint_url)


class FailBefore(Fault):
    """Raise ``EndpointConnectionError`` without sending anything."""

    name = "fail_before"
    acts_on: ClassVar[frozenset[Where]] = frozenset({"client"})

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        ctx.call.outcome = "fault:fail_before"
        raise EndpointConnectionError(endpoint_url=ctx.endpoint_url)


def _client_error(ctx: FaultContext, code: str, message: str, status: int) -> ClientError:
    """Build the exception botocore would raise for a DynamoDB error ``code``."""
    request_id = uuid.uuid4().hex.upper()
    response: dict[str, Any] = {
        "Error": {"Message": message, "Code": code},
        "ResponseMetadata": {
            "RequestId": request_id,
            "HTTPStatusCode": status,
            "HTTPHeaders": {
                "x-amzn-requestid": request_id,
                "content-type": "application/x-amz-json-1.0",
            },
            "RetryAttempts": 0,
        },
    }
    exc_type: type[ClientError] = ClientError
    exceptions = getattr(ctx.client, "exceptions", None)
    if exceptions is not None:
        exc_type = exceptions.from_code(code)
    if exc_type is not ClientError:
        # Modeled DynamoDB errors also carry their members at the top level.
        response["message"] = message
    return exc_type(response, ctx.api_name)  # type: ignore[arg-type]


class Throttle(Fault):
    """Raise a throttling ``ClientError`` (HTTP 400) without sending anything."""

    name = "throttle"
    acts_on: ClassVar[frozenset[Where]] = frozenset({"client"})

    def __init__(self, code: str = "ProvisionedThroughputExceededException") -> None:
        if code not in THROTTLING_CODES:
            raise ValueError(f"not a throttling error code: {code!r}")
        self.code = code

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        ctx.call.outcome = f"fault:throttle:{self.code}"
        message = (
            "Rate of requests exceeds the allowed throughput."
            if self.code == "ThrottlingException"
            else "The level of configured provisioned throughput for the table was exceeded."
        )
        raise _client_error(ctx, self.code, message, 400)

    def __repr__(self) -> str:
        return f"<fault throttle {self.code}>"


class ServerError(Fault):
    """Raise a 5xx ``ClientError`` (``InternalServerError``/``ServiceUnavailable``) unsent."""

    name = "server_error"
    acts_on: ClassVar[frozenset[Where]] = frozenset({"client"})

    def __init__(self, status: int = 500) -> None:
        if status not in _SERVER_ERROR_CODES:
            raise ValueError(f"status must be one of {sorted(_SERVER_ERROR_CODES)}")
        self.status = status

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        ctx.call.outcome = f"fault:server_error:{self.status}"
        code = _SERVER_ERROR_CODES[self.status]
        message = _SERVER_ERROR_MESSAGES[self.status]
        raise _client_error(ctx, code, message, self.status)

    def __repr__(self) -> str:
        return f"<fault server_error {self.status}>"


def drop_response() -> Fault:
    """Send the request, then raise ``ReadTimeoutError`` instead of returning the answer.

    The server applied the write (or refused it) but the caller cannot know which: the
    ambiguous failure a lost response produces in production. The call's outcome is
    ``"dropped:ok"`` or ``"dropped:error:<Code>"``.
    """
    return DropResponse()


def fail_before() -> Fault:
    """Raise ``EndpointConnectionError`` without sending the request: nothing is applied."""
    return FailBefore()


def throttle(code: str = "ProvisionedThroughputExceededException") -> Fault:
    """Raise a throttling ``ClientError`` (HTTP 400) without sending the request.

    ``code`` is one of :data:`THROTTLING_CODES`. The exception has the type and
    ``response`` botocore would produce, e.g.
    ``client.exceptions.ProvisionedThroughputExceededException``.
    """
    return Throttle(code)


def server_error(status: int = 500) -> Fault:
    """Raise ``InternalServerError`` (500) or ``ServiceUnavailable`` (503), unsent."""
    return ServerError(status)


# --- the client proxy --------------------------------------------------------------------


class FaultyClient(FaultPlan, _ClientBase):
    """A DynamoDB client wrapper that injects planned faults and records every call.

    Pass it wherever a client goes, e.g. ``LeaseManager(FaultyClient(client), table)``,
    then :meth:`plan` faults for the operations of your choice. Every call of an
    operation in :data:`INTERCEPTED_OPERATIONS` is recorded in :attr:`calls` (a list of
    :class:`Call`), faulted or not. Other attributes pass through to the wrapped client,
    so ``meta``, ``exceptions`` and the remaining operations behave as usual. To a type
    checker it is a ``DynamoDBClient``. The wrapped client stays open; closing it is
    still its owner's job.

    Faults act above botocore, so the SDK's own retries do not see them: each faulted
    call fails once, as if every retry had failed. Use :class:`LossyProxy` to fault the
    wire below the SDK's retries instead, and :class:`FaultyStore` to fault any lease
    store at the level of its operations.

    ``operation`` in :meth:`plan` and :meth:`calls_of` is a client method or DynamoDB
    operation name (``"update_item"`` or ``"UpdateItem"``).
    """

    where: ClassVar[Where] = "client"
    operations = INTERCEPTED_OPERATIONS

    def __init__(self, client: Any) -> None:
        super().__init__()
        self.wrapped: Any = client

    operation_name = staticmethod(_snake_case)

    def _intercept(self, operation: str, method: Callable[..., Awaitable[Any]]) -> Any:
        async def call(**params: Any) -> Any:
            def context(record: Call) -> FaultContext:
                return FaultContext(
                    operation=operation,
                    api_name=self._api_name(operation),
                    endpoint_url=self._endpoint_url(),
                    client=self.wrapped,
                    call=record,
                )

            return await self._run(operation, params, lambda: method(**params), context)

        call.__name__ = operation
        return call

    def _api_name(self, operation: str) -> str:
        mapping = getattr(getattr(self.wrapped, "meta", None), "method_to_api_mapping", {})
        name = mapping.get(operation)
        return str(name) if name else "".join(p.title() for p in operation.split("_"))

    def _endpoint_url(self) -> str:
        return str(getattr(getattr(self.wrapped, "meta", None), "endpoint_url", "unknown"))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.wrapped, name)
        if name in INTERCEPTED_OPERATIONS:
            return self._intercept(name, attr)
        return attr

    def __repr__(self) -> str:
        return f"<FaultyClient around {self.wrapped!r}: {len(self.rules)} rules>"
