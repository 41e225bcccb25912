"""The fault tools, now public in :mod:`aiolease.testing`; re-exported for the tests."""

from __future__ import annotations

from aiolease.testing import (
    INTERCEPTED_OPERATIONS,
    THROTTLING_CODES,
    Call,
    Fault,
    FaultContext,
    FaultyClient,
    LossyProxy,
    Perform,
    ProxyRule,
    Rule,
    SkewedClock,
    drop_response,
    fail_before,
    hang,
    latency,
    server_error,
    throttle,
)

__all__ = [
    "INTERCEPTED_OPERATIONS",
    "THROTTLING_CODES",
    "Call",
    "Fault",
    "FaultContext",
    "FaultyClient",
    "LossyProxy",
    "Perform",
    "ProxyRule",
    "Rule",
    "SkewedClock",
    "drop_response",
    "fail_before",
    "hang",
    "latency",
    "server_error",
    "throttle",
]
