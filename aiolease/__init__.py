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
from ._version import __version__ as __version__

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
