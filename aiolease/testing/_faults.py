"""Fault injection at the client: :class:`FaultyClient` and the faults it applies.

A fault never fakes ``ConditionalCheckFailedException``: that outcome must come from the
database itself, so a test can never "prove" a behaviour DynamoDB would not produce.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import anyio
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

    _ClientBase = DynamoDBClient
else:
    _ClientBase = object

__all__ = [
    "INTERCEPTED_OPERATIONS",
    "THROTTLING_CODES",
    "Call",
    "Fault",
    "FaultContext",
    "FaultyClient",
    "Perform",
    "Rule",
    "drop_response",
    "fail_before",
    "hang",
    "latency",
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

#: The real call, as handed to :meth:`Fault.apply`: await it to send the request.
Perform: TypeAlias = Callable[[], Awaitable[Any]]


def _snake_case(operation: str) -> str:
    """Return ``update_item`` for ``UpdateItem`` or ``update_item``; ``*`` stays ``*``."""
    if operation == "*" or operation.islower():
        return operation
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return f"error:{exc.response.get('Error', {}).get('Code', 'Unknown')}"
    return f"error:{type(exc).__name__}"


# --- calls and faults --------------------------------------------------------------------


@dataclass
class Call:
    """One call that went through a :class:`FaultyClient`, as recorded in its ``calls``.

    ``operation`` is the client method (``"update_item"``), ``params`` its keyword
    arguments, ``fault`` the ``repr`` of the fault applied (``None`` if none), ``sent``
    whether the request was handed to the real client, and ``started``/``finished`` are
    :func:`time.monotonic` readings. ``outcome`` is one of:

    * ``"pending"`` -- still in flight;
    * ``"ok"`` -- sent, and the response returned to the caller;
    * ``"error:<Code>"`` -- sent, and the service's error (or a transport error, by type
      name) raised to the caller;
    * ``"dropped:ok"`` / ``"dropped:error:<Code>"`` -- sent and processed as shown, but the
      caller got a ``ReadTimeoutError`` instead of the response;
    * ``"fault:<name>"`` -- not sent; an injected error was raised (``fault:fail_before``,
      ``fault:throttle:<Code>``, ``fault:server_error:<status>``);
    * ``"cancelled"`` -- the caller was cancelled while the call was in flight (``sent``
      tells whether the request had been issued).
    """

    operation: str
    params: dict[str, Any]
    fault: str | None = None
    outcome: str = "pending"
    sent: bool = False
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None


@dataclass(frozen=True)
class FaultContext:
    """What a fault knows about the call it acts on.

    ``operation`` is the client method (``"update_item"``), ``api_name`` the DynamoDB
    operation (``"UpdateItem"``), ``client`` the wrapped client and ``call`` the record
    being written; set ``call.outcome`` to describe what the fault did.
    """

    operation: str
    api_name: str
    endpoint_url: str
    client: Any
    call: Call


class Fault:
    """Base class of faults: decides how ``perform`` (the real call) is used, if at all.

    Subclass it to write your own: :meth:`apply` receives ``perform``, which sends the
    request when awaited, and a :class:`FaultContext`. It may call ``perform`` zero or
    more times, sleep, and return a result or raise. For example, a fault that lets the
    write through and then answers with an error of your choice::

        class ApplyThenFail(Fault):
            name = "apply_then_fail"

            async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
                await perform()
                ctx.call.outcome = "fault:apply_then_fail"
                raise RuntimeError("boom")
    """

    name: str = "fault"

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        """Run the call under this fault and return its result, or raise."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<fault {self.name}>"


class DropResponse(Fault):
    """Perform the real call, then raise ``ReadTimeoutError`` as if the answer was lost."""

    name = "drop_response"

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        ctx.call.sent = True
        try:
            await perform()
        except Exception as exc:  # noqa: BLE001 - any answer is lost, errors included
            ctx.call.outcome = f"dropped:{_describe_error(exc)}"
        else:
            ctx.call.outcome = "dropped:ok"
        raise ReadTimeoutError(endpoint_url=ctx.endpoint_url)


class FailBefore(Fault):
    """Raise ``EndpointConnectionError`` without sending anything."""

    name = "fail_before"

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        ctx.call.outcome = "fault:fail_before"
        raise EndpointConnectionError(endpoint_url=ctx.endpoint_url)


class Latency(Fault):
    """Sleep ``seconds`` before (or, with ``after=True``, after) the real call."""

    name = "latency"

    def __init__(self, seconds: float, *, after: bool = False) -> None:
        if seconds < 0:
            raise ValueError("latency must not be negative")
        self.seconds = seconds
        self.after = after

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        if not self.after:
            await anyio.sleep(self.seconds)
        result = await perform()
        if self.after:
            await anyio.sleep(self.seconds)
        return result

    def __repr__(self) -> str:
        return f"<fault latency {self.seconds}s {'after' if self.after else 'before'}>"


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


class Hang(Fault):
    """Never return (until cancelled); nothing is sent."""

    name = "hang"

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        await anyio.sleep_forever()


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


def latency(seconds: float, *, after: bool = False) -> Fault:
    """Sleep ``seconds`` before sending the request, or after the answer with ``after=True``.

    With ``after=True`` the write is applied before the caller hears of it.
    """
    return Latency(seconds, after=after)


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


def hang() -> Fault:
    """Never answer: wait until cancelled, without sending the request."""
    return Hang()


# --- the client proxy --------------------------------------------------------------------


@dataclass
class Rule:
    """A planned fault, as returned by :meth:`FaultyClient.plan`.

    ``remaining`` is how many more calls it may hit (``None``: no limit) and ``fired``
    how many it has hit so far.
    """

    operation: str
    fault: Fault
    remaining: int | None
    probability: float | None = None
    rng: random.Random | None = None
    fired: int = 0

    def matches(self, operation: str) -> bool:
        """Return whether this rule fires for a call of ``operation`` (and count it)."""
        if self.remaining == 0 or self.operation not in ("*", operation):
            return False
        if self.rng is not None and self.rng.random() >= (self.probability or 0.0):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        self.fired += 1
        return True


class FaultyClient(_ClientBase):
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
    wire below the SDK's retries instead.
    """

    def __init__(self, client: Any) -> None:
        self.wrapped: Any = client
        self.calls: list[Call] = []
        self.rules: list[Rule] = []

    def plan(
        self,
        operation: str,
        fault: Fault,
        *,
        times: int | Literal["auto"] | None = "auto",
        probability: float | None = None,
        seed: int | None = None,
    ) -> Rule:
        """Plan ``fault`` for calls of ``operation`` and return the new :class:`Rule`.

        ``operation`` is a client method or DynamoDB operation name (``"update_item"``
        or ``"UpdateItem"``), or ``"*"`` for every intercepted operation. Without
        ``probability`` the fault hits the next calls; with it, each call is hit with that
        probability, drawn from ``random.Random(seed)``. ``times`` caps how many calls it
        hits: a number, ``None`` for no limit, or ``"auto"`` (the default): one call
        without ``probability``, no limit with it. Rules are consulted in the order they
        were planned; the first that fires decides the call.
        """
        op = _snake_case(operation)
        if op != "*" and op not in INTERCEPTED_OPERATIONS:
            raise ValueError(f"{operation!r} is not an intercepted operation")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if times == "auto":
            times = None if probability is not None else 1
        if times is not None and (not isinstance(times, int) or times < 1):
            raise ValueError(
                f"times must be a number of calls (at least 1), None or 'auto', got {times!r}"
            )
        rng = random.Random(seed) if probability is not None else None  # noqa: S311
        rule = Rule(op, fault, times, probability, rng)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forget all planned faults (the call log stays)."""
        self.rules.clear()

    def calls_of(self, operation: str) -> list[Call]:
        """Return the recorded calls of ``operation``."""
        op = _snake_case(operation)
        return [c for c in self.calls if op in ("*", c.operation)]

    def _next_fault(self, operation: str) -> Fault | None:
        for rule in self.rules:
            if rule.matches(operation):
                return rule.fault
        return None

    def _intercept(self, operation: str, method: Callable[..., Awaitable[Any]]) -> Any:
        async def call(**params: Any) -> Any:
            record = Call(operation=operation, params=dict(params))
            self.calls.append(record)
            fault = self._next_fault(operation)
            record.fault = repr(fault) if fault is not None else None

            async def perform() -> Any:
                record.sent = True
                return await method(**params)

            try:
                if fault is None:
                    result = await perform()
                else:
                    ctx = FaultContext(
                        operation=operation,
                        api_name=self._api_name(operation),
                        endpoint_url=self._endpoint_url(),
                        client=self.wrapped,
                        call=record,
                    )
                    result = await fault.apply(perform, ctx)
            except BaseException as exc:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    record.outcome = "cancelled"
                elif record.outcome == "pending":
                    record.outcome = _describe_error(exc)
                raise
            else:
                if record.outcome == "pending":
                    record.outcome = "ok"
                return result
            finally:
                record.finished = time.monotonic()

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
