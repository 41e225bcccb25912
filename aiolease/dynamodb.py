"""The DynamoDB store: every DynamoDB request aiolease makes, one method per operation.

`DynamoDBStore` holds the item schema and the expressions, and judges expiry by the
manager's wall clock within `max_clock_skew` (design.md §4); it knows nothing of
retries, deadlines or cancellation (that policy lives in the manager). Each operation
sends exactly one request and translates failures into `LeaseStoreError` in one place
(`_translate`), saying whether retrying can heal the failure and whether the write may
have been applied. ``LeaseManager(client, table)`` builds one; pass one yourself as
``LeaseManager(DynamoDBStore(client, table, ...))``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol

import anyio
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ParamValidationError,
    ResponseStreamingError,
)

from ._durations import TTL_BUFFER, Duration, seconds
from ._exceptions import LeaseConfigError, LeaseStoreError, TableNotFoundError
from ._validation import utf8_size
from .store import (
    REVOKED_KEPT,
    Capability,
    DataUpdate,
    Now,
    Outcome,
    Page,
    Record,
    _Restore,
    duration_ms,
)

__all__ = ["ATTRIBUTE_ROLES", "DynamoDBClient", "DynamoDBStore"]


class DynamoDBClient(Protocol):
    """The parts of an aiobotocore or aioboto3 DynamoDB client that aiolease uses.

    Each property is the client method of that name; the store calls nothing else.
    """

    @property
    def meta(self) -> Any:
        """The client's ``meta``: its service model names the service (``dynamodb``)."""

    @property
    def update_item(self) -> Callable[..., Awaitable[Any]]:
        """The client's ``update_item``."""

    @property
    def get_item(self) -> Callable[..., Awaitable[Any]]:
        """The client's ``get_item``."""

    @property
    def scan(self) -> Callable[..., Awaitable[Any]]:
        """The client's ``scan``."""

    @property
    def describe_table(self) -> Callable[..., Awaitable[Any]]:
        """The client's ``describe_table``."""

    @property
    def create_table(self) -> Callable[..., Awaitable[Any]]:
        """The client's ``create_table``."""

    @property
    def describe_time_to_live(self) -> Callable[..., Awaitable[Any]]:
        """The client's ``describe_time_to_live``."""

    @property
    def update_time_to_live(self) -> Callable[..., Awaitable[Any]]:
        """The client's ``update_time_to_live``."""


# The logical attributes of a lease item, each renameable through `attribute_names`.
ATTRIBUTE_ROLES: Final = (
    "key",  # partition key: the lease key (S)
    "owner",  # the holder's owner name, kept after release for operators (S)
    "token",  # the holder's token; absent when nobody holds the lease (S)
    "version",  # record version, new on every grant and refresh (S)
    "fence",  # fencing token, strictly increasing per grant, never reset (N)
    "expires_at",  # holder's wall clock at send time plus ttl, epoch milliseconds (N)
    "duration",  # the lease's ttl in milliseconds, for the version rule (N)
    "data",  # user data as a JSON string (S)
    "data_before",  # the data as the current grant found it, for its undo (S; NULL: none)
    "sequence",  # order of the holder's writes: an older one arriving late is refused (N)
    "released",  # token of the last release: tells a retried release it already applied (S)
    "released_before",  # the release marker as the last grant found it: one more step back (S)
    "revoked",  # tokens of undone acquires, newest first: no late write of theirs lands (L)
    "ttl",  # DynamoDB TTL attribute, epoch seconds: cleanup only, never read (N)
)

logger = logging.getLogger("aiolease")

_TABLE_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_FIRST_POLL: Final = 0.05  # the first pause while a new table becomes ACTIVE
_DEFAULT_NAMES: Final = {role: role for role in ATTRIBUTE_ROLES} | {"key": "pk"}

_THROTTLING: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)
_SERVER_ERRORS: Final = frozenset(
    {"InternalServerError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException"}
)
_CONDITION_FAILED: Final = "ConditionalCheckFailedException"
_UNSUPPORTED: Final = frozenset({"UnknownOperationException"})
# What asyncio and aiohttp say when a client is used outside the loop it belongs to.
_WRONG_LOOP: Final = (
    "Event loop is closed",
    "attached to a different loop",
    "different event loop",
    "bound to a different event loop",
)


@dataclass(frozen=True, slots=True)
class _Expression:
    """The fixed parts of a conditional write: everything but the values."""

    update: str
    condition: str
    names: Mapping[str, str]


def _data_kind(data: DataUpdate) -> str:
    if isinstance(data, str):
        return "set"
    if isinstance(data, _Restore):
        return "restore"
    return "remove" if data is None else "keep"


def _with_data(values: dict[str, Any], data: DataUpdate) -> dict[str, Any]:
    """`values` plus the data to store, if any."""
    if isinstance(data, str):
        values[":dat"] = {"S": data}
    return values


class DynamoDBStore:
    """Leases in one DynamoDB table, through an aiobotocore or aioboto3 client.

    `client` stays yours to open and close; `table` names the lease table (see
    `create_table()`). `attribute_names` renames item attributes by role (see
    `ATTRIBUTE_ROLES`); `sort_key` is ``(attribute, value)`` for a table with a sort key,
    every lease item using that fixed value; `ttl_buffer` is how long after expiry
    DynamoDB TTL may delete an item (one day).
    """

    capabilities: frozenset[Capability] = frozenset()

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        attribute_names: Mapping[str, str] | None = None,
        sort_key: tuple[str, str] | None = None,
        ttl_buffer: Duration = timedelta(days=1),
    ) -> None:
        _check_client(client)
        if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
            raise LeaseConfigError(
                f"table must be a DynamoDB table name (3-255 characters of letters, digits, "
                f"'_', '-' and '.'), got {table!r}"
            )
        if sort_key is not None and not (
            isinstance(sort_key, tuple)
            and len(sort_key) == 2  # noqa: PLR2004
            and all(isinstance(part, str) and part for part in sort_key)
        ):
            raise LeaseConfigError(
                "sort_key must be a tuple (attribute_name, value) of two non-empty strings, "
                f"got {sort_key!r}"
            )
        if sort_key is not None:
            utf8_size(sort_key[1], name="sort_key value")
        self.client = client
        self.table = table
        endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None)
        self.location = f"DynamoDB table {table!r}" + (f" at {endpoint}" if endpoint else "")
        self.names = _resolve_names(attribute_names)
        self.sort_key = sort_key
        self.ttl_buffer = seconds(ttl_buffer, name="ttl_buffer", bounds=TTL_BUFFER)
        self._expressions: dict[tuple[str, str, bool], _Expression] = {}
        if sort_key is not None and sort_key[0] in self.names.values():
            raise LeaseConfigError(
                f"sort_key attribute {sort_key[0]!r} collides with a lease attribute name; "
                "choose another name or rename the lease attribute through attribute_names"
            )

    def __repr__(self) -> str:
        return f"<DynamoDBStore table={self.table!r}>"

    def check_options(self, *, max_clock_skew: float) -> None:
        """Refuse a skew bound as large as `ttl_buffer`: TTL deletes by DynamoDB's clock."""
        if max_clock_skew >= self.ttl_buffer:
            raise LeaseConfigError(
                f"max_clock_skew ({max_clock_skew} s) must be below ttl_buffer "
                f"({self.ttl_buffer} s): DynamoDB deletes expired items by its own clock"
            )

    # -- keys and records -------------------------------------------------------------

    def item_key(self, key: str) -> dict[str, Any]:
        """The primary key of the item for lease `key`."""
        item_key: dict[str, Any] = {self.names["key"]: {"S": key}}
        if self.sort_key is not None:
            item_key[self.sort_key[0]] = {"S": self.sort_key[1]}
        return item_key

    def record(self, item: Mapping[str, Any] | None, now: Now) -> Record | None:
        """Decode a DynamoDB item read at `now`, or None."""
        if not item:
            return None
        n = self.names

        def text(role: str) -> str | None:
            value = item.get(n[role]) or {}
            return str(value["S"]) if "S" in value else None

        def number(role: str) -> int | None:
            value = item.get(n[role]) or {}
            return None if "N" not in value else _integer(value["N"], role=role, key=key)

        def texts(role: str) -> tuple[str, ...]:
            value = item.get(n[role]) or {}
            return tuple(str(v["S"]) for v in value.get("L", ()) if "S" in v)

        key = str(item[n["key"]]["S"])
        token = text("token")
        expires_at_ms = number("expires_at")
        # The wall-clock rule: a lease may be taken over max_clock_skew after its expiry.
        takeover_in = (
            None if token is None or expires_at_ms is None else now.takeover_in(expires_at_ms)
        )
        return Record(
            key=key,
            owner=text("owner"),
            token=token,
            version=text("version"),
            fence=number("fence"),
            expires_at_ms=expires_at_ms,
            duration_ms=number("duration"),
            data=text("data"),
            released=text("released"),
            released_before=text("released_before"),
            revoked=texts("revoked"),
            sequence=number("sequence"),
            takeover_in=takeover_in,
        )

    # -- the lease operations (one request each) --------------------------------------

    async def acquire(
        self,
        key: str,
        *,
        owner: str,
        token: str,
        version: str,
        ttl: float,
        seen_version: str | None,
        data: DataUpdate,
        now: Now,
    ) -> Outcome:
        """Take the lease if free, expired, or unchanged since `seen_version`.

        Never applies twice: a re-send of a write already in force is refused, and the
        refusal returns our own token and version, by which the caller recognises its
        grant. A release marker with our token, or our token among the revoked, stops a
        stale write from reviving a lease we have released or undone. The fence grows by
        one from its stored value, or starts from the wall clock in microseconds when the
        item (or its fence) is missing. The holder's write sequence starts at 1. Given
        data, the data found is kept in `data_before` for the undo.
        """
        values: dict[str, Any] = {
            ":tok": {"S": token},
            ":own": {"S": owner},
            ":ver": {"S": version},
            ":exp": {"N": str(now.expires_at_ms(ttl))},
            ":dur": {"N": str(duration_ms(ttl))},
            ":ttl": {"N": str(self._ttl_attribute(now, ttl))},
            ":stale": {"N": str(now.stale_before_ms())},  # the wall-clock rule
            ":seed": {"N": str(now.fence_seed())},
            ":one": {"N": "1"},
            ":none": {"NULL": True},
        }
        if seen_version is not None:
            values[":seen"] = {"S": seen_version}
        expression = self._expression("acquire", data, seen=seen_version is not None)
        return await self._conditional_update(key, expression, _with_data(values, data), now)

    async def refresh(
        self,
        key: str,
        *,
        token: str,
        version: str,
        ttl: float,
        sequence: int,
        data: DataUpdate,
        now: Now,
    ) -> Outcome:
        """Extend the lease held with `token`, writing a new record version.

        Refused if a write of ours with a later `sequence` has applied: a refresh that
        arrives late never rolls the item back.
        """
        values: dict[str, Any] = {
            ":tok": {"S": token},
            ":seq": {"N": str(sequence)},
            ":ver": {"S": version},
            ":exp": {"N": str(now.expires_at_ms(ttl))},
            ":dur": {"N": str(duration_ms(ttl))},
            ":ttl": {"N": str(self._ttl_attribute(now, ttl))},
        }
        expression = self._expression("refresh", data)
        return await self._conditional_update(key, expression, _with_data(values, data), now)

    async def release(self, key: str, *, token: str, data: DataUpdate, now: Now) -> Outcome:
        """Clear the holder if it is still `token`, leaving `token` as the release marker.

        The item, its fence and (unless `data` says otherwise) its data are kept; RESTORE
        puts back the data the grant found.
        """
        values: dict[str, Any] = {":tok": {"S": token}}
        if isinstance(data, _Restore):
            values[":none"] = {"NULL": True}
        expression = self._expression("release", data)
        return await self._conditional_update(key, expression, _with_data(values, data), now)

    async def break_lease(
        self, key: str, *, token: str, fence: int | None, marker: str, now: Now
    ) -> Outcome:
        """Clear the grant of `token` with `fence` on `key`, leaving `marker` as release marker.

        Conditioned on that very grant, so a re-sent break never touches the next one (nor
        a later grant of the same token). An applied outcome carries the record as it was.
        """
        values: dict[str, Any] = {":tok": {"S": token}, ":mark": {"S": marker}}
        if fence is None:
            condition = "#tok = :tok AND attribute_not_exists(#fen)"
        else:
            condition = "#tok = :tok AND #fen = :fen"
            values[":fen"] = {"N": str(fence)}
        expression = _Expression(
            "SET #rel = :mark REMOVE #tok", condition, self._names("tok", "rel", "fen")
        )
        return await self._conditional_update(key, expression, values, now, return_values="ALL_OLD")

    async def revoke(self, key: str, *, token: str, previous: tuple[str, ...], now: Now) -> Outcome:
        """Add `token` to the item's undone tokens, if they still are `previous`.

        Keeps the newest `REVOKED_KEPT`. The acquire condition refuses a revoked token, so a
        write of an undone acquire that is still in the network can no longer land. The
        condition on `previous` makes the write safe to re-send and to race with another;
        since every change puts a unique token first, the first element stands for the
        list (some emulators cannot compare whole lists).
        """
        kept = [{"S": t} for t in (token, *previous)[:REVOKED_KEPT]]
        values: dict[str, Any] = {":rvk": {"L": kept}}
        if previous:
            condition = "#rvk[0] = :newest"
            values[":newest"] = {"S": previous[0]}
        else:
            condition = "attribute_not_exists(#rvk)"
        expression = _Expression("SET #rvk = :rvk", condition, self._names("rvk"))
        return await self._conditional_update(key, expression, values, now)

    async def get(self, key: str, *, now: Now) -> Record | None:
        """Read the item for `key` with a strongly consistent read."""
        response = await self._call(
            "GetItem",
            self.client.get_item,
            TableName=self.table,
            Key=self.item_key(key),
            ConsistentRead=True,
        )
        return self.record(response.get("Item"), now)

    async def list_page(self, prefix: str, *, cursor: Any, now: Now) -> Page:
        """One page of items whose key starts with `prefix` and that have a holder token.

        A consistent Scan; `cursor` is DynamoDB's ``LastEvaluatedKey`` of the page before.
        """
        names = self._names("tok")
        values: dict[str, Any] = {}
        filters = ["attribute_exists(#tok)"]
        if prefix:
            filters.append("begins_with(#key, :prefix)")
            names.update(self._names("key"))
            values[":prefix"] = {"S": prefix}
        if self.sort_key is not None:
            names["#sk"] = self.sort_key[0]
            values[":sk"] = {"S": self.sort_key[1]}
            filters.append("#sk = :sk")
        params: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "FilterExpression": " AND ".join(filters),
            "ExpressionAttributeNames": names,
        }
        if values:
            params["ExpressionAttributeValues"] = values
        if cursor is not None:
            params["ExclusiveStartKey"] = dict(cursor)
        response = await self._call("Scan", self.client.scan, **params)
        items = response.get("Items", ())
        records = [r for r in (self.record(item, now) for item in items) if r is not None]
        return Page(records, response.get("LastEvaluatedKey"))

    # -- the table ---------------------------------------------------------------------

    async def check_table(self) -> None:
        """Refuse a table whose keys do not match, or that replicates last-writer-wins."""
        self._check_description(await self._describe_table())

    def _check_description(self, description: Mapping[str, Any]) -> None:
        types = {
            a["AttributeName"]: a["AttributeType"]
            for a in description.get("AttributeDefinitions", ())
        }
        schema = {k["KeyType"]: k["AttributeName"] for k in description.get("KeySchema", ())}
        wanted = {"HASH": self.names["key"]}
        if self.sort_key is not None:
            wanted["RANGE"] = self.sort_key[0]
        if schema != wanted or any(types.get(name) != "S" for name in wanted.values()):
            found = ", ".join(f"{kind} {name} ({types.get(name)})" for kind, name in schema.items())
            hint = (
                "pass sort_key=(name, value) for a table with a sort key"
                if "RANGE" in schema and "RANGE" not in wanted
                else "use attribute_names={'key': ...} and sort_key to match the table, "
                "or create a table with LeaseManager.create_table()"
            )
            raise LeaseConfigError(
                f"table {self.table!r} has key schema [{found}], but aiolease needs "
                + ", ".join(f"{kind} {name} (S)" for kind, name in wanted.items())
                + f"; {hint}"
            )
        if description.get("Replicas") and description.get("MultiRegionConsistency") != "STRONG":
            raise LeaseConfigError(
                f"table {self.table!r} is a global table with eventually consistent "
                "replication: two Regions could both grant a lease. Use a single-Region table "
                "or a global table with multi-Region strong consistency (MRSC)"
            )

    async def create_table(self) -> bool:
        """Create the table if missing, wait until it is ACTIVE, check it and enable TTL.

        Uses on-demand billing; False if the table existed (with a usable schema). TTL is
        enabled where the server supports it.
        """
        created = await self._create_table()
        delay = _FIRST_POLL
        while True:
            description = await self._describe_table()
            if description.get("TableStatus") == "ACTIVE":
                break
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)
        self._check_description(description)
        if not await self._enable_ttl():
            logger.info("table %r: the server does not support TTL; skipped", self.table)
        return created

    async def _describe_table(self) -> Mapping[str, Any]:
        """DescribeTable's ``Table`` description."""
        response = await self._call(
            "DescribeTable", self.client.describe_table, TableName=self.table
        )
        table: Mapping[str, Any] = response["Table"]
        return table

    async def _create_table(self) -> bool:
        """Create the table with on-demand billing; False if it already existed."""
        attributes = [{"AttributeName": self.names["key"], "AttributeType": "S"}]
        schema = [{"AttributeName": self.names["key"], "KeyType": "HASH"}]
        if self.sort_key is not None:
            attributes.append({"AttributeName": self.sort_key[0], "AttributeType": "S"})
            schema.append({"AttributeName": self.sort_key[0], "KeyType": "RANGE"})
        try:
            await self._call(
                "CreateTable",
                self.client.create_table,
                TableName=self.table,
                AttributeDefinitions=attributes,
                KeySchema=schema,
                BillingMode="PAY_PER_REQUEST",
            )
        except LeaseStoreError as failure:
            if _error_code(failure.__cause__) == "ResourceInUseException":
                return False
            raise
        return True

    async def _enable_ttl(self) -> bool:
        """Turn on DynamoDB TTL on the ttl attribute; False where the server lacks TTL."""
        try:
            response = await self._call(
                "DescribeTimeToLive", self.client.describe_time_to_live, TableName=self.table
            )
        except LeaseStoreError as failure:
            if _error_code(failure.__cause__) in _UNSUPPORTED:
                return False
            raise
        description = response.get("TimeToLiveDescription", {})
        if description.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}:
            return True
        try:
            await self._call(
                "UpdateTimeToLive",
                self.client.update_time_to_live,
                TableName=self.table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": self.names["ttl"]},
            )
        except LeaseStoreError as failure:
            if _error_code(failure.__cause__) in _UNSUPPORTED:
                return False
            raise
        return True

    # -- plumbing ----------------------------------------------------------------------

    def _ttl_attribute(self, now: Now, ttl: float) -> int:
        """When DynamoDB TTL may delete the item, in epoch seconds: after the buffer."""
        return math.ceil(now.wall + ttl + self.ttl_buffer)

    def _names(self, *aliases: str) -> dict[str, str]:
        roles = {
            "key": "key",
            "tok": "token",
            "own": "owner",
            "ver": "version",
            "exp": "expires_at",
            "dur": "duration",
            "ttl": "ttl",
            "fen": "fence",
            "rel": "released",
            "rlb": "released_before",
            "rvk": "revoked",
            "dbf": "data_before",
            "seq": "sequence",
            "dat": "data",
        }
        return {f"#{alias}": self.names[roles[alias]] for alias in aliases}

    def _expression(self, operation: str, data: DataUpdate, *, seen: bool = False) -> _Expression:
        """The expressions of a lease write, built once per shape and then reused."""
        shape = (operation, _data_kind(data), seen)
        expression = self._expressions.get(shape)
        if expression is None:
            expression = self._expressions[shape] = self._build(*shape)
        return expression

    def _build(self, operation: str, data: str, seen: bool) -> _Expression:
        removes: list[str] = []
        if operation == "acquire":
            # Expired or unchanged: someone else's grant. Ours in force is never re-applied:
            # the refusal shows it, and the caller recognises it.
            taken = ["#exp < :stale", "#ver = :seen"] if seen else ["#exp < :stale"]
            free = ["attribute_not_exists(#tok)", f"(#tok <> :tok AND ({' OR '.join(taken)}))"]
            sets = [
                "#own = :own",
                "#tok = :tok",
                "#seq = :one",
                "#ver = :ver",
                "#exp = :exp",
                "#dur = :dur",
                "#ttl = :ttl",
                "#fen = if_not_exists(#fen, :seed) + :one",
                # Keep the marker of the release before this grant: a retried release of
                # the previous holder still recognises its own after this holder releases.
                "#rlb = if_not_exists(#rel, :none)",
            ]
            condition = (
                f"({' OR '.join(free)})"
                # A late write of a lease of ours released up to two grants back, or of an
                # acquire of ours undone, must not land.
                " AND (attribute_not_exists(#rel) OR #rel <> :tok)"
                " AND (attribute_not_exists(#rlb) OR #rlb <> :tok)"
                " AND NOT contains(#rvk, :tok)"
            )
            aliases = ["tok", "own", "seq", "ver", "exp", "dur", "ttl", "fen", "rel", "rlb", "rvk"]
            aliases.append("dbf")
            if data == "keep":
                removes.append("#dbf")  # the data stays as it was: nothing to undo
            else:
                sets.append("#dbf = if_not_exists(#dat, :none)")
        elif operation == "refresh":
            sets = ["#seq = :seq", "#ver = :ver", "#exp = :exp", "#dur = :dur", "#ttl = :ttl"]
            removes = ["#dbf"]  # the grant was handed out: no undo will need it
            condition = "#tok = :tok AND #seq <= :seq"
            aliases = ["tok", "seq", "ver", "exp", "dur", "ttl", "dbf"]
        else:
            sets, removes = ["#rel = :tok"], ["#tok", "#dbf"]
            condition = "#tok = :tok"
            aliases = ["tok", "rel", "dbf"]
        if data == "set":
            sets.append("#dat = :dat")
        elif data == "remove":
            removes.append("#dat")
        elif data == "restore":
            sets.append("#dat = if_not_exists(#dbf, :none)")
        if data != "keep":
            aliases.append("dat")
        update = "SET " + ", ".join(sets)
        if removes:
            update += " REMOVE " + ", ".join(removes)
        return _Expression(update, condition, self._names(*aliases))

    async def _conditional_update(
        self,
        key: str,
        expression: _Expression,
        values: dict[str, Any],
        now: Now,
        *,
        return_values: str = "ALL_NEW",
    ) -> Outcome:
        try:
            response = await self._call(
                "UpdateItem",
                self.client.update_item,
                TableName=self.table,
                Key=self.item_key(key),
                UpdateExpression=expression.update,
                ConditionExpression=expression.condition,
                ExpressionAttributeNames=dict(expression.names),
                ExpressionAttributeValues=values,
                ReturnValues=return_values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except LeaseStoreError as failure:
            error = failure.__cause__
            if _error_code(error) != _CONDITION_FAILED:
                raise
            answer = getattr(error, "response", {})
            return Outcome(
                applied=False, record=self.record(answer.get("Item"), now), resent=_resent(answer)
            )
        return Outcome(
            applied=True,
            record=self.record(response.get("Attributes"), now),
            resent=_resent(response),
        )

    async def _call(
        self, operation: str, method: Callable[..., Awaitable[Any]], **params: Any
    ) -> dict[str, Any]:
        try:
            response: dict[str, Any] = await method(**params)
        except Exception as error:
            raise _translate(error, operation=operation, table=self.table) from error
        return response


def _check_client(client: object) -> None:
    meta = getattr(client, "meta", None)
    service = getattr(getattr(meta, "service_model", None), "service_name", None)
    if service != "dynamodb":
        raise LeaseConfigError(
            "client must be an aiobotocore or aioboto3 DynamoDB client, as yielded by "
            "`async with session.create_client('dynamodb')`; got "
            + (f"a client for {service!r}" if service else f"{type(client).__name__}")
        )


def _resolve_names(overrides: Mapping[str, str] | None) -> dict[str, str]:
    names = dict(_DEFAULT_NAMES)
    if overrides is None:
        return names
    if not isinstance(overrides, Mapping):
        raise LeaseConfigError(
            f"attribute_names must be a mapping of role to attribute name, got {overrides!r}"
        )
    for role, name in overrides.items():
        if role not in names:
            raise LeaseConfigError(
                f"attribute_names has unknown role {role!r}; the roles are "
                + ", ".join(ATTRIBUTE_ROLES)
            )
        if not isinstance(name, str) or not name:
            raise LeaseConfigError(
                f"attribute_names[{role!r}] must be a non-empty string, got {name!r}"
            )
        names[role] = name
    if len(set(names.values())) != len(names):
        raise LeaseConfigError(f"attribute_names must be distinct, got {names!r}")
    return names


def _integer(raw: object, *, role: str, key: str) -> int | None:
    """A stored number as an int; None (and a warning) for one no writer of ours stores.

    Another writer (an older or buggy version, a person with the console) may have stored
    a fraction or an exponent; reading it must report it, never crash.
    """
    try:
        number = Decimal(str(raw))
    except InvalidOperation:
        number = Decimal("NaN")
    if number.is_finite() and number == number.to_integral_value():
        return int(number)
    logger.warning("lease %r: its %s is %r, not an integer; read as missing", key, role, raw)
    return None


def _wrong_loop(error: BaseException) -> bool:
    """Whether `error` is, or wraps, asyncio's complaint about a closed or foreign loop."""
    seen: BaseException | None = error
    for _ in range(4):  # the error, what botocore or aiohttp wrapped, and their causes
        if seen is None:
            return False
        if isinstance(seen, RuntimeError) and any(sign in str(seen) for sign in _WRONG_LOOP):
            return True
        wrapped = getattr(seen, "kwargs", {}).get("error")
        seen = wrapped if isinstance(wrapped, BaseException) else seen.__cause__ or seen.__context__
    return False


def _resent(answer: Mapping[str, Any]) -> bool:
    """Whether botocore sent the request more than once before this answer."""
    return bool((answer.get("ResponseMetadata") or {}).get("RetryAttempts"))


def _error_code(error: BaseException | None) -> str | None:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return None


def _translate(error: Exception, *, operation: str, table: str) -> LeaseStoreError:
    """Map a botocore/aiohttp failure to a `LeaseStoreError` (or `TableNotFoundError`)."""
    if isinstance(error, ClientError):
        return _translate_client_error(error, operation=operation, table=table)
    if _wrong_loop(error):
        # Retrying cannot help: the client is bound to a loop that is gone or not this one.
        message = (
            f"{operation} could not be sent: the DynamoDB client belongs to an event loop "
            f"that is closed or is not the running one ({type(error).__name__}: {error}); "
            "create the client and the LeaseManager inside the loop that uses them"
        )
        transient, maybe_applied = False, True
    elif isinstance(error, ParamValidationError):
        message = f"{operation} parameters were rejected by botocore: {error}"
        transient = maybe_applied = False
    elif isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        message = f"{operation} could not connect to DynamoDB: {error}"
        transient, maybe_applied = True, False
    elif isinstance(
        error, HTTPClientError | ResponseStreamingError | OSError | asyncio.TimeoutError
    ) or type(error).__module__.startswith("aiohttp"):
        # The request may have reached DynamoDB and been applied before the failure.
        message = f"{operation} failed in transit ({type(error).__name__}: {error})"
        transient = maybe_applied = True
    else:
        # Credentials, SSO tokens, region and other configuration: retrying cannot help.
        message = (
            f"{operation} could not be sent ({type(error).__name__}: {error}); check the "
            "AWS credentials, region and configuration of the client given to LeaseManager"
        )
        transient, maybe_applied = False, False
    return LeaseStoreError(
        message, operation=operation, transient=transient, maybe_applied=maybe_applied
    )


def _not_dynamodb(code: str, detail: str) -> bool:
    """Whether an error came from something other than DynamoDB: a web page, a bare status."""
    return code.isdigit() or detail.lstrip()[:1] == "<"


def _translate_client_error(error: ClientError, *, operation: str, table: str) -> LeaseStoreError:
    code = _error_code(error) or ""
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    detail = error.response.get("Error", {}).get("Message") or code
    foreign = _not_dynamodb(code, detail)
    if foreign:
        detail = "a web page, not DynamoDB's answer"  # never the page itself
    if code == "ResourceNotFoundException":
        return TableNotFoundError(
            f"DynamoDB table {table!r} was not found ({operation}): create it with "
            "`await LeaseManager.create_table()` or check the table name and region",
            table=table,
            operation=operation,
        )
    if code in _THROTTLING:
        message = f"{operation} was throttled ({code})"
        transient, maybe_applied = True, False
    elif code in _SERVER_ERRORS or status >= 500:  # noqa: PLR2004
        message = f"{operation} failed with a server error ({code or status}): {detail}"
        transient = maybe_applied = True
    elif foreign:
        message = (
            f"{operation} got HTTP {status or code} from an endpoint that is not DynamoDB "
            "(it answered with a web page): check the client's endpoint URL"
        )
        transient = maybe_applied = False
    elif code == _CONDITION_FAILED:
        message = detail
        transient = maybe_applied = False
    elif code == "ValidationException" and "maximum allowed size" in detail:
        message = (
            f"{operation} on table {table!r} was refused: the item would exceed DynamoDB's "
            "400 KB limit. An acquire with data= keeps the stored data beside the new data "
            "until the grant is settled; data stored by an earlier aiolease (limit 350,000 "
            "bytes) may not leave room. Acquire once without data= and release with "
            "data=None (or smaller data) to shrink it"
        )
        transient = maybe_applied = False
    else:
        message = f"{operation} on table {table!r} was refused ({code}): {detail}"
        transient = maybe_applied = False
    return LeaseStoreError(
        message, operation=operation, transient=transient, maybe_applied=maybe_applied
    )
