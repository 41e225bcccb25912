"""Fault injection for the safety tests.

Three tools, from the client outwards:

* :class:`FaultyClient` wraps a DynamoDB client (aiobotocore or aioboto3) and, for the
  operations it intercepts, can drop responses, fail before sending, add latency,
  throttle, answer with server errors or hang -- per operation, a planned number of
  times or at random with a seed. Every intercepted call is recorded in
  :attr:`FaultyClient.calls`.
* :class:`LossyProxy` is a loopback HTTP/1.1 proxy in front of a DynamoDB endpoint that
  misbehaves on the wire: it forwards a request and then hangs up without answering,
  stalls, or answers with a 5xx status. Unlike :class:`FaultyClient`, its faults happen
  below botocore, so botocore's own retries (when enabled) act on them.
* :class:`SkewedClock` is a wall clock with an adjustable offset.

A fault never fakes ``ConditionalCheckFailedException``: that outcome must come from the
database itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Self

import anyio
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

if TYPE_CHECKING:
    from types import TracebackType

    from types_aiobotocore_dynamodb import DynamoDBClient

    _ClientBase = DynamoDBClient
else:
    _ClientBase = object

__all__ = [
    "INTERCEPTED_OPERATIONS",
    "Call",
    "DropResponse",
    "FailBefore",
    "Fault",
    "FaultyClient",
    "Hang",
    "Latency",
    "LossyProxy",
    "ProxyRule",
    "Rule",
    "ServerError",
    "SkewedClock",
    "Throttle",
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

THROTTLING_CODES: Final = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
_SERVER_ERROR_CODES: Final = {500: "InternalServerError", 503: "ServiceUnavailable"}

Perform = Callable[[], Awaitable[Any]]


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
    """One intercepted client call.

    ``outcome`` is one of:

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
    """What a fault knows about the call it acts on."""

    operation: str
    api_name: str
    endpoint_url: str
    client: Any
    call: Call


class Fault:
    """Base class of faults: decides how ``perform`` (the real call) is used, if at all."""

    name: str = "fault"

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        """Run the call with this fault and return its result or raise."""
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
        except Exception as exc:
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
        message = "Internal server error" if self.status == 500 else "Service Unavailable"
        raise _client_error(ctx, code, message, self.status)

    def __repr__(self) -> str:
        return f"<fault server_error {self.status}>"


class Hang(Fault):
    """Never return (until cancelled); nothing is sent."""

    name = "hang"

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        await anyio.sleep_forever()


def drop_response() -> Fault:
    """Perform the call, then raise ``ReadTimeoutError``: the write happened, unbeknownst."""
    return DropResponse()


def fail_before() -> Fault:
    """Raise ``EndpointConnectionError`` without performing the call."""
    return FailBefore()


def latency(seconds: float, *, after: bool = False) -> Fault:
    """Sleep ``seconds`` before the call (or after it, with ``after=True``)."""
    return Latency(seconds, after=after)


def throttle(code: str = "ProvisionedThroughputExceededException") -> Fault:
    """Raise a throttling ``ClientError`` with ``code`` (HTTP 400) without calling."""
    return Throttle(code)


def server_error(status: int = 500) -> Fault:
    """Raise ``InternalServerError`` (500) or ``ServiceUnavailable`` (503) without calling."""
    return ServerError(status)


def hang() -> Fault:
    """Wait forever (cancellable) instead of calling."""
    return Hang()


# --- the client proxy --------------------------------------------------------------------


@dataclass
class Rule:
    """A planned fault: which operation, how many more times, and how likely."""

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
    """A DynamoDB client proxy that injects planned faults and records every call.

    Attribute access passes through to the wrapped client, so ``meta``, ``exceptions``
    and the operations not in :data:`INTERCEPTED_OPERATIONS` behave as usual. To the
    type checker it is a ``DynamoDBClient``. The wrapped client's lifetime stays with
    its owner.
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
        times: int | None = None,
        probability: float | None = None,
        seed: int | None = None,
    ) -> Rule:
        """Queue ``fault`` for calls of ``operation`` (``update_item``, ``UpdateItem`` or ``*``).

        Without ``probability`` the fault applies to the next ``times`` calls (default 1).
        With it, each call is hit with that probability, drawn from ``random.Random(seed)``,
        at most ``times`` times (default: without limit). Rules are consulted in the order
        they were planned; the first that fires decides the call.
        """
        op = _snake_case(operation)
        if op != "*" and op not in INTERCEPTED_OPERATIONS:
            raise ValueError(f"{operation!r} is not an intercepted operation")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if times is None and probability is None:
            times = 1
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
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


# --- the lossy HTTP proxy ----------------------------------------------------------------

ProxyAction = Literal["drop_response", "stall", "status"]

_STATUS_ERRORS: Final = {
    500: ("com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error"),
    502: ("com.amazon.coral.service#BadGateway", "Bad Gateway"),
    503: ("com.amazon.coral.availability#ServiceUnavailable", "Service Unavailable"),
    504: ("com.amazon.coral.service#GatewayTimeout", "Gateway Timeout"),
}
_MAX_HEAD = 64 * 1024
_Upstream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class ProxyRule:
    """A planned proxy fault for requests of one ``X-Amz-Target`` operation (or ``*``)."""

    operation: str
    action: ProxyAction
    remaining: int | None
    code: int = 500
    fired: int = 0


class _BadRequestError(Exception):
    """The client sent something this proxy does not understand."""


@dataclass
class _Message:
    head: bytes
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        first = self.head.split(b"\r\n", 1)[0]
        connection = self.headers.get("connection", "").lower()
        if first.startswith(b"HTTP/1.0") or first.endswith(b"HTTP/1.0"):
            return connection == "keep-alive"
        return connection != "close"


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str]] | None:
    """Read an HTTP head; ``None`` on a clean EOF before any byte."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise _BadRequestError("connection closed inside a message head") from exc
    except asyncio.LimitOverrunError as exc:
        raise _BadRequestError("message head too long") from exc
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        if not line:
            continue
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return head, headers


async def _read_body(
    reader: asyncio.StreamReader, headers: dict[str, str], *, until_eof: bool
) -> bytes:
    """Read a message body as raw bytes (chunked bodies are kept chunked)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            parts.append(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = await reader.readuntil(b"\r\n")
                    parts.append(trailer)
                    if trailer == b"\r\n":
                        return b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if until_eof:
        return await reader.read()
    return b""


async def _read_message(reader: asyncio.StreamReader, *, response: bool) -> _Message | None:
    got = await _read_head(reader)
    if got is None:
        return None
    head, headers = got
    body = await _read_body(reader, headers, until_eof=response)
    return _Message(head, headers, body)


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


class LossyProxy:
    """A loopback HTTP/1.1 proxy in front of a DynamoDB endpoint that can lose answers.

    Use as ``async with LossyProxy(upstream) as proxy`` and point a client at
    ``proxy.endpoint_url``. Rules are keyed by the operation in the request's
    ``X-Amz-Target`` header (``"UpdateItem"``; ``"*"`` for any) and consulted in the order
    they were added; requests that match no rule are forwarded untouched. Counters:

    * ``forwarded[op]`` -- requests sent upstream (including ones whose answer was then
      dropped);
    * ``received[op]`` -- requests received from clients.

    On exit the proxy closes its listening socket and every connection, and cancels
    every task it started.
    """

    def __init__(self, upstream_endpoint_url: str) -> None:
        match = re.fullmatch(r"http://([^/:]+|\[[^\]]+\]):(\d+)/?", upstream_endpoint_url)
        if match is None:
            raise ValueError(
                f"upstream must be http://HOST:PORT on this machine, not {upstream_endpoint_url!r}"
            )
        self.upstream_host = match.group(1).strip("[]")
        self.upstream_port = int(match.group(2))
        self.upstream_endpoint_url = upstream_endpoint_url
        self.rules: list[ProxyRule] = []
        self.forwarded: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._port: int | None = None

    @property
    def endpoint_url(self) -> str:
        """The URL clients should use instead of the upstream's."""
        if self._port is None:
            raise RuntimeError("the proxy is not running")
        return f"http://127.0.0.1:{self._port}"

    # rules

    def _add(self, operation: str, action: ProxyAction, times: int | None, code: int) -> ProxyRule:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for always)")
        rule = ProxyRule(operation, action, times, code)
        self.rules.append(rule)
        return rule

    def drop_response(self, operation: str, *, times: int | None = 1) -> ProxyRule:
        """Forward the request, read the whole answer, then hang up without answering."""
        return self._add(operation, "drop_response", times, 0)

    def stall(self, operation: str, *, times: int | None = 1) -> ProxyRule:
        """Accept the request and never answer (nothing is forwarded)."""
        return self._add(operation, "stall", times, 0)

    def status(self, operation: str, *, code: int = 500, times: int | None = 1) -> ProxyRule:
        """Answer with HTTP ``code`` and a DynamoDB-shaped error body, without forwarding."""
        if code not in _STATUS_ERRORS:
            raise ValueError(f"code must be one of {sorted(_STATUS_ERRORS)}")
        return self._add(operation, "status", times, code)

    def clear(self) -> None:
        """Remove all rules (counters stay)."""
        self.rules.clear()

    def _rule_for(self, operation: str) -> ProxyRule | None:
        for rule in self.rules:
            if rule.remaining != 0 and rule.operation in ("*", operation):
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.fired += 1
                return rule
        return None

    # lifecycle

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(
            self._on_connection, host="127.0.0.1", port=0, limit=_MAX_HEAD
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop listening, close every connection and cancel every task."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        self._writers.clear()

    # serving

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        upstream: list[_Upstream] = []
        try:
            while await self._serve_one(reader, writer, upstream):
                pass
        except (_BadRequestError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            for up_reader_writer in upstream:
                up_reader_writer[1].transport.abort()
            self._writers.discard(writer)
            writer.transport.abort()
            if task is not None:
                self._tasks.discard(task)

    async def _serve_one(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: list[_Upstream],
    ) -> bool:
        """Handle one request; return whether the client connection stays open.

        ``upstream`` holds this connection's upstream connection, if one is open.
        """
        request = await _read_message(reader, response=False)
        if request is None:
            return False
        target = request.headers.get("x-amz-target", "")
        operation = target.rpartition(".")[2] or "-"
        self.received[operation] += 1
        rule = self._rule_for(operation)
        action = rule.action if rule is not None else None
        if action == "stall":
            await anyio.sleep_forever()
        if rule is not None and action == "status":
            writer.write(_error_response(rule.code))
            await writer.drain()
            return request.keep_alive
        response = await self._forward(upstream, request, operation)
        if action == "drop_response":
            # A clean FIN: aiohttp reports ServerDisconnectedError, which botocore
            # turns into ConnectionClosedError (retryable).
            writer.close()
            return False
        writer.write(response.head + response.body)
        await writer.drain()
        return request.keep_alive and response.keep_alive

    async def _forward(
        self, upstream: list[_Upstream], request: _Message, operation: str
    ) -> _Message:
        """Send ``request`` upstream, reconnecting once if a kept-alive connection is stale."""
        for attempt in range(2):
            reused = bool(upstream)
            if not upstream:
                upstream.append(
                    await asyncio.open_connection(
                        self.upstream_host, self.upstream_port, limit=_MAX_HEAD
                    )
                )
            up_reader, up_writer = upstream[0]
            response: _Message | None = None
            try:
                up_writer.write(request.head + request.body)
                await up_writer.drain()
                response = await _read_message(up_reader, response=True)
            except (ConnectionError, _BadRequestError):
                if not reused or attempt:
                    raise
            if response is not None:
                self.forwarded[operation] += 1
                if not response.keep_alive:
                    upstream.clear()
                    await _close_writer(up_writer)
                return response
            upstream.clear()
            await _close_writer(up_writer)
            if not reused:
                break
        raise ConnectionError("upstream closed the connection without answering")


def _error_response(code: int) -> bytes:
    error_type, message = _STATUS_ERRORS[code]
    body = json.dumps({"__type": error_type, "message": message}).encode()
    reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}.get(
        code, "Gateway Timeout"
    )
    head = (
        f"HTTP/1.1 {code} {reason}\r\n"
        "Content-Type: application/x-amz-json-1.0\r\n"
        f"x-amzn-RequestId: {uuid.uuid4().hex.upper()}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


# --- clocks ------------------------------------------------------------------------------


class SkewedClock:
    """A wall clock (epoch seconds) running ``offset`` seconds ahead of this machine's."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset

    def jump(self, seconds: float) -> None:
        """Move the clock by ``seconds`` (negative to go back)."""
        self.offset += seconds

    def __repr__(self) -> str:
        return f"SkewedClock(offset={self.offset!r})"
