"""Tools to test code that uses aiolease: a local DynamoDB, fault injection, skewed clocks.

* :func:`local_dynamodb` runs a local DynamoDB (moto, serialised so that conditional
  writes are atomic, or Amazon's DynamoDB Local) and yields a :class:`LocalDynamoDB`
  with a ready client and lease table. The pytest plugin
  ``aiolease.testing.pytest_plugin`` offers it as fixtures.
* :class:`FaultyClient` wraps a DynamoDB client and, per operation, on a schedule or at
  random, drops responses after the write was applied (:func:`drop_response`), fails
  before sending (:func:`fail_before`), adds :func:`latency`, throttles
  (:func:`throttle`), answers with a :func:`server_error` or never answers (:func:`hang`).
* :class:`LossyProxy` does the same on the wire, below the SDK's retries.
* :class:`SkewedClock` is a wall clock to skew one manager against another.

The moto backend needs the ``aiolease[testing]`` extra; everything else needs only
aiolease's own dependencies. See ``docs/testing.md`` for a guide.
"""

from ._clock import SkewedClock
from ._emulator import EmulatorError, EmulatorUnavailableError, LocalDynamoDB, local_dynamodb
from ._faults import (
    INTERCEPTED_OPERATIONS,
    THROTTLING_CODES,
    Call,
    Fault,
    FaultContext,
    FaultyClient,
    Perform,
    Rule,
    drop_response,
    fail_before,
    hang,
    latency,
    server_error,
    throttle,
)
from ._proxy import LossyProxy, ProxyRule

__all__ = [
    "INTERCEPTED_OPERATIONS",
    "THROTTLING_CODES",
    "Call",
    "EmulatorError",
    "EmulatorUnavailableError",
    "Fault",
    "FaultContext",
    "FaultyClient",
    "LocalDynamoDB",
    "LossyProxy",
    "Perform",
    "ProxyRule",
    "Rule",
    "SkewedClock",
    "drop_response",
    "fail_before",
    "hang",
    "latency",
    "local_dynamodb",
    "server_error",
    "throttle",
]
