"""Fault injection on the wire: :class:`LossyProxy`, a loopback HTTP/1.1 proxy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Self

import anyio

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["LossyProxy", "ProxyRule"]

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
    """A planned :class:`LossyProxy` fault for requests of one operation (or ``*``).

    ``remaining`` is how many more requests it may hit (``None``: no limit) and ``fired``
    how many it has hit so far.
    """

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

    Use as ``async with LossyProxy(upstream_endpoint_url) as proxy`` and point a client
    at ``proxy.endpoint_url``. The upstream must be a plain ``http://HOST:PORT`` endpoint
    on this machine, such as a local emulator's. Faults are planned per operation with
    :meth:`drop_response`, :meth:`stall` and :meth:`status`; they happen below botocore,
    so the SDK's own retries (when enabled in the client's config) act on them, as they
    would on a flaky network.

    Rules are keyed by the operation in the request's ``X-Amz-Target`` header
    (``"UpdateItem"``; ``"*"`` for any) and consulted in the order they were added;
    requests that match no rule are forwarded untouched. Counters:

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
        """Forward the request, read the whole answer, then hang up without answering.

        The server applied the request; the client sees the connection close
        (botocore's ``ConnectionClosedError``, which its retries retry). Applies to the
        next ``times`` requests of ``operation`` (``None``: all of them).
        """
        return self._add(operation, "drop_response", times, 0)

    def stall(self, operation: str, *, times: int | None = 1) -> ProxyRule:
        """Accept the request and never answer; nothing is forwarded.

        The client waits until its ``read_timeout`` or until cancelled. Applies to the
        next ``times`` requests of ``operation`` (``None``: all of them).
        """
        return self._add(operation, "stall", times, 0)

    def status(self, operation: str, *, code: int = 500, times: int | None = 1) -> ProxyRule:
        """Answer with HTTP ``code`` and a DynamoDB-shaped error body, without forwarding.

        ``code`` is 500, 502, 503 or 504. Applies to the next ``times`` requests of
        ``operation`` (``None``: all of them).
        """
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
