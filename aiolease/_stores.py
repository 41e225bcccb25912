"""The store a manager runs on: the one it is given, or a DynamoDB store it builds."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import cast

from ._durations import Duration
from ._exceptions import LeaseConfigError
from .dynamodb import DynamoDBClient, DynamoDBStore
from .store import OPERATIONS, Store

__all__ = ["store_for"]

#: What a store has (`aiolease.store.Store`), for saying what an incomplete one lacks.
_STORE_ATTRIBUTES = ("table", "location", "capabilities", "check_options", *OPERATIONS)


def store_for(
    client: object,
    table: str | None,
    *,
    attribute_names: Mapping[str, str] | None,
    sort_key: tuple[str, str] | None,
    ttl_buffer: Duration | None,
) -> Store:
    """The store of ``LeaseManager(client, table)`` or ``LeaseManager(store)``."""
    if table is not None:
        buffer = {} if ttl_buffer is None else {"ttl_buffer": ttl_buffer}  # else its default
        return DynamoDBStore(
            cast("DynamoDBClient", client),
            table,
            attribute_names=attribute_names,
            sort_key=sort_key,
            **buffer,
        )
    if not isinstance(client, Store):
        # Looked up statically: a proxy's __getattr__ is not asked (nor its errors raised).
        absent = object()
        missing = [
            name
            for name in _STORE_ATTRIBUTES
            if inspect.getattr_static(client, name, absent) is absent
        ]
        if len(missing) < len(_STORE_ATTRIBUTES) // 2:  # a store, short of a few parts
            raise LeaseConfigError(
                f"{type(client).__name__} is not a complete lease store: it lacks "
                f"{', '.join(missing)} (see aiolease.store.Store)"
            )
        if getattr(getattr(client, "meta", None), "service_model", None) is not None:
            raise LeaseConfigError(
                "a DynamoDB client needs the name of its lease table: "
                "LeaseManager(client, 'leases')"
            )
        raise LeaseConfigError(
            "expected a lease store (such as aiolease.testing.MemoryStore() or "
            "aiolease.dynamodb.DynamoDBStore(client, table)), or a DynamoDB client and a "
            f"table name; got {type(client).__name__}"
        )
    given = [
        name
        for name, value in (
            ("attribute_names", attribute_names),
            ("sort_key", sort_key),
            ("ttl_buffer", ttl_buffer),
        )
        if value is not None
    ]
    if given:
        options = " and ".join(given)
        raise LeaseConfigError(
            f"{options} {'is an option' if len(given) == 1 else 'are options'} of the DynamoDB "
            "store, not of a manager given a store: pass them to "
            "DynamoDBStore(client, table, ...) instead"
        )
    return client
