"""Asyncio-native distributed leases (locks) on Amazon DynamoDB, with fencing tokens."""

from ._events import LeaseEvent
from ._exceptions import (
    LeaseConfigError,
    LeaseError,
    LeaseHeldError,
    LeaseLostError,
    LeaseStoreError,
    LeaseTimeoutError,
    TableNotFoundError,
)
from ._lease import Lease, LeaseInfo
from ._manager import LeaseManager

__all__ = [
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
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415

        return version("aiolease")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
