"""A DynamoDB stand-in at the HTTP layer, for request rates no emulator on this machine keeps.

It answers through botocore's ``before-send`` event, after the request was built, signed
and serialised, and its answer is parsed as usual: everything the client does per call
is still measured, only the network and the server are gone. It applies every
``UpdateItem`` it gets (conditions are not evaluated: use it for uncontended leases only)
and keeps the items, so answers carry the attributes the library checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.awsrequest import AioAWSResponse
from botocore.awsrequest import HTTPHeaders

__all__ = ["UNUSED_ENDPOINT", "DirectClient", "StubDynamoDB"]

# An endpoint for a client whose requests the stub answers: it is never contacted.
UNUSED_ENDPOINT = "http://127.0.0.1:9"

_ASSIGNMENT = re.compile(r"\s*(#\w+)\s*=\s*(.+)")
_IF_NOT_EXISTS = re.compile(r"if_not_exists\((#\w+),\s*(:\w+)\)(?:\s*\+\s*(:\w+))?")


class _Body:
    """The raw body an `AioAWSResponse` reads."""

    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    async def read(self) -> bytes:
        return self._payload


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


@dataclass
class StubDynamoDB:
    """In-memory answers for UpdateItem, GetItem and DescribeTable of one lease table.

    `latency` adds a pause to every answer (seconds) to stand in for the network.
    `sent` records ``(operation, key, monotonic time)`` of every request when `record`.
    Without `keep`, nothing is stored: each answer is computed from its request alone
    (enough for leases that are acquired once and then only refreshed).
    """

    key_name: str = "pk"
    latency: float = 0.0
    record: bool = False
    keep: bool = True
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[tuple[str, str, float]] = field(default_factory=list)

    def __hash__(self) -> int:
        return id(self)

    @contextlib.contextmanager
    def attached(self, client: Any) -> Iterator[StubDynamoDB]:
        """Answer `client`'s requests for the duration of the block."""
        client.meta.events.register("before-send.dynamodb", self)
        try:
            yield self
        finally:
            client.meta.events.unregister("before-send.dynamodb", self)

    async def __call__(self, request: Any, **kwargs: Any) -> AioAWSResponse:
        target = request.headers["X-Amz-Target"]
        operation = (target.decode() if isinstance(target, bytes) else target).rsplit(".", 1)[-1]
        body = json.loads(request.body)
        if self.record:
            key = body.get("Key", {}).get(self.key_name, {}).get("S", "")
            self.sent.append((operation, key, time.monotonic()))
        if self.latency:
            await asyncio.sleep(self.latency)
        if operation == "UpdateItem":
            answer = self.update(body)
        elif operation == "GetItem":
            item = self.items.get(body["Key"][self.key_name]["S"])
            answer = {"Item": item} if item else {}
        elif operation == "DescribeTable":
            answer = {"Table": self.description(body["TableName"])}
        else:
            raise NotImplementedError(f"the stub does not answer {operation}")
        payload = json.dumps(answer).encode()
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        headers["x-amzn-RequestId"] = "stub"
        headers["Content-Length"] = str(len(payload))
        return AioAWSResponse(request.url, 200, headers, _Body(payload))

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply an UpdateItem request (its JSON body) and return the answer."""
        key = body["Key"][self.key_name]["S"]
        names: dict[str, str] = body.get("ExpressionAttributeNames", {})
        values: dict[str, Any] = body.get("ExpressionAttributeValues", {})
        if self.keep:
            item = self.items.setdefault(key, {self.key_name: {"S": key}})
        else:
            item = {self.key_name: {"S": key}}
        old = dict(item)
        expression: str = body["UpdateExpression"]
        sets, _, removes = expression.partition(" REMOVE ")
        for assignment in _split_top_level(sets.removeprefix("SET ")):
            match = _ASSIGNMENT.fullmatch(assignment)
            if match is None:
                raise NotImplementedError(f"the stub cannot apply {assignment!r}")
            name, value = names[match[1]], match[2].strip()
            computed = _IF_NOT_EXISTS.fullmatch(value)
            if computed is None:
                item[name] = values[value]
                continue
            current = old.get(names[computed[1]], values[computed[2]])
            if computed[3] is not None:
                total = int(current["N"]) + int(values[computed[3]]["N"])
                current = {"N": str(total)}
            if "NULL" in current:
                item.pop(name, None)
            else:
                item[name] = current
        for alias in _split_top_level(removes):
            item.pop(names[alias], None)
        returned = body.get("ReturnValues", "NONE")
        if returned == "ALL_NEW":
            return {"Attributes": item}
        if returned == "ALL_OLD":
            return {"Attributes": old} if len(old) > 1 else {}
        return {}

    def description(self, table: str) -> dict[str, Any]:
        """DescribeTable's description of a lease table."""
        return {
            "TableName": table,
            "TableStatus": "ACTIVE",
            "AttributeDefinitions": [{"AttributeName": self.key_name, "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": self.key_name, "KeyType": "HASH"}],
        }


class DirectClient:
    """Answers lease writes in Python with no botocore at all, as cheaply as it can.

    What a lease operation costs through it is aiolease's own code, plus the few
    microseconds it takes here to echo the written attributes back.
    """

    def __init__(self, client: Any, stub: StubDynamoDB) -> None:
        self.meta = client.meta
        self._stub = stub

    async def update_item(self, **params: Any) -> dict[str, Any]:
        values = params["ExpressionAttributeValues"]
        item = dict(params["Key"])
        for alias, attribute in params["ExpressionAttributeNames"].items():
            value = values.get(":" + alias[1:])
            if value is not None:
                item[attribute] = value
        if ":seed" in values:
            item[params["ExpressionAttributeNames"]["#fen"]] = {"N": values[":seed"]["N"]}
        return {"Attributes": item}

    async def describe_table(self, *, TableName: str) -> dict[str, Any]:  # noqa: N803
        return {"Table": self._stub.description(TableName)}
