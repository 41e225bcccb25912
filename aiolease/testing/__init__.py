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
* :class:`FaultyStore` wraps any lease store and faults its operations the way a store
  fails: the answer lost after the write applied (:func:`lose_answer`), the store
  unreachable (:func:`unavailable`), an error retrying cannot heal (:func:`denied`), a
  write applied twice (:func:`resend`), :func:`latency`, no answer (:func:`hang`).
* :class:`SkewedClock` is a wall clock to skew one manager against another.
* :class:`MemoryStore` is a lease store in this process, for ``LeaseManager(MemoryStore())``:
  the DynamoDB store's semantics (or a SQL store's) without a server, with a hook at
  every operation (:class:`Operation`) to delay it, apply it twice or lose its answer.

The moto backend needs the ``aiolease[testing]`` extra; everything else needs only
aiolease's own dependencies. See ``docs/testing.md`` for a guide.
"""

from ._clock import SkewedClock
from ._emulator import EmulatorError, EmulatorUnavailableError, LocalDynamoDB, local_dynamodb
from ._fault_plans import Call, Fault, FaultContext, Perform, Rule, hang, latency
from ._faults import (
    INTERCEPTED_OPERATIONS,
    THROTTLING_CODES,
    FaultyClient,
    drop_response,
    fail_before,
    server_error,
    throttle,
)
from ._faulty_store import STORE_OPERATIONS, FaultyStore, denied, lose_answer, resend, unavailable
from ._memory import Interceptor, MemoryStore, Operation, Semantics
from ._options import ManagerOptions
from ._proxy import LossyProxy, ProxyRule

__all__ = [
    "INTERCEPTED_OPERATIONS",
    "STORE_OPERATIONS",
    "THROTTLING_CODES",
    "Call",
    "EmulatorError",
    "EmulatorUnavailableError",
    "Fault",
    "FaultContext",
    "FaultyClient",
    "FaultyStore",
    "Interceptor",
    "LocalDynamoDB",
    "LossyProxy",
    "ManagerOptions",
    "MemoryStore",
    "Operation",
    "Perform",
    "ProxyRule",
    "Rule",
    "Semantics",
    "SkewedClock",
    "denied",
    "drop_response",
    "fail_before",
    "hang",
    "latency",
    "local_dynamodb",
    "lose_answer",
    "resend",
    "server_error",
    "throttle",
    "unavailable",
]
