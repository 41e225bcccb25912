"""What a fault is, and how faults are planned and recorded, for a client or a store.

:class:`FaultyClient` (DynamoDB, above the SDK) and :class:`FaultyStore` (any lease
store) share this: a :class:`Fault` decides what becomes of one call, a :class:`Rule`
says which calls it hits, and every call is recorded as a :class:`Call`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias

import anyio

__all__ = [
    "Call",
    "Fault",
    "FaultContext",
    "FaultPlan",
    "Perform",
    "Rule",
    "Where",
    "hang",
    "latency",
]

#: The real call, as handed to :meth:`Fault.apply`: await it to send the request.
Perform: TypeAlias = Callable[[], Awaitable[Any]]

#: Where a fault can act: on a DynamoDB client's calls, or on a lease store's operations.
Where: TypeAlias = Literal["client", "store"]


def describe_error(exc: BaseException) -> str:
    """``error:<Code>`` for a botocore error, ``error:<TypeName>`` for any other."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return f"error:{response.get('Error', {}).get('Code', 'Unknown')}"
    return f"error:{type(exc).__name__}"


@dataclass
class Call:
    """One call that went through a :class:`FaultyClient` or :class:`FaultyStore`.

    ``operation`` is the client method (``"update_item"``) or store operation
    (``"acquire"``), ``params`` its keyword arguments, ``fault`` the ``repr`` of the fault
    applied (``None`` if none), ``sent`` whether the request was handed on, and
    ``started``/``finished`` are :func:`time.monotonic` readings. ``outcome`` is one of:

    * ``"pending"`` -- still in flight;
    * ``"ok"`` -- sent, and the answer returned to the caller;
    * ``"error:<Code>"`` -- sent, and the error raised to the caller (a service's error
      code, or the exception's type name);
    * ``"dropped:ok"`` / ``"dropped:error:<Code>"`` -- sent and processed as shown, but the
      caller got an error instead of the answer;
    * ``"resent:ok"`` / ``"resent:error:<Code>"`` -- sent twice, the caller got the second
      answer;
    * ``"fault:<name>"`` -- not sent; an injected error was raised (``fault:fail_before``,
      ``fault:throttle:<Code>``, ``fault:server_error:<status>``, ``fault:unavailable``,
      ``fault:denied``);
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
    """What a fault knows about the call it acts on.

    ``operation`` is the client method (``"update_item"``) or store operation
    (``"acquire"``); ``api_name`` the DynamoDB operation (``"UpdateItem"``; for a store, the
    operation again); ``client`` the wrapped client or store; ``endpoint_url`` the client's
    endpoint (for a store, its table); ``call`` the record being written: set
    ``call.outcome`` to describe what the fault did.
    """

    operation: str
    api_name: str
    endpoint_url: str
    client: Any
    call: Call


class Fault:
    """Base class of faults: decides how ``perform`` (the real call) is used, if at all.

    Subclass it to write your own: :meth:`apply` receives ``perform``, which sends the
    request when awaited, and a :class:`FaultContext`. It may call ``perform`` zero or
    more times, sleep, and return a result or raise. For example, a fault that lets the
    write through and then answers with an error of your choice::

        class ApplyThenFail(Fault):
            name = "apply_then_fail"

            async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
                await perform()
                ctx.call.outcome = "fault:apply_then_fail"
                raise RuntimeError("boom")

    ``acts_on`` says where the fault makes sense: one that raises botocore's errors acts on
    a client only, one that raises `LeaseStoreError` on a store only.
    """

    name: str = "fault"
    acts_on: ClassVar[frozenset[Where]] = frozenset({"client", "store"})

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        """Run the call under this fault and return its result, or raise."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<fault {self.name}>"


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


class Hang(Fault):
    """Never return (until cancelled); nothing is sent."""

    name = "hang"

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        await anyio.sleep_forever()


def latency(seconds: float, *, after: bool = False) -> Fault:
    """Sleep ``seconds`` before sending the request, or after the answer with ``after=True``.

    With ``after=True`` the write is applied before the caller hears of it.
    """
    return Latency(seconds, after=after)


def hang() -> Fault:
    """Never answer: wait until cancelled, without sending the request."""
    return Hang()


@dataclass
class Rule:
    """A planned fault, as returned by ``plan()``.

    ``remaining`` is how many more calls it may hit (``None``: no limit) and ``fired``
    how many it has hit so far.
    """

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


class FaultPlan:
    """The planned faults and the call log of one faulty client or store."""

    where: ClassVar[Where]
    operations: ClassVar[Collection[str]]

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.rules: list[Rule] = []

    @staticmethod
    def operation_name(operation: str) -> str:
        """The name ``operation`` is recorded under."""
        return operation

    def plan(
        self,
        operation: str,
        fault: Fault,
        *,
        times: int | Literal["auto"] | None = "auto",
        probability: float | None = None,
        seed: int | None = None,
    ) -> Rule:
        """Plan ``fault`` for calls of ``operation`` and return the new :class:`Rule`.

        ``operation`` is one of the intercepted operations, or ``"*"`` for all of them.
        Without ``probability`` the fault hits the next calls; with it, each call is hit
        with that probability, drawn from ``random.Random(seed)``. ``times`` caps how many
        calls it hits: a number, ``None`` for no limit, or ``"auto"`` (the default): one
        call without ``probability``, no limit with it. Rules are consulted in the order
        they were planned; the first that fires decides the call.
        """
        op = self.operation_name(operation)
        if op != "*" and op not in self.operations:
            raise ValueError(
                f"{operation!r} is not an intercepted operation; "
                f"expected '*' or one of {', '.join(sorted(self.operations))}"
            )
        if self.where not in fault.acts_on:
            raise ValueError(
                f"{fault!r} acts on a {' or '.join(sorted(fault.acts_on))}, "
                f"not on a {self.where}: {type(self).__name__} takes "
                + (
                    "lose_answer(), unavailable(), denied(), resend(), latency() and hang()"
                    if self.where == "store"
                    else "drop_response(), fail_before(), throttle(), server_error(), "
                    "latency() and hang()"
                )
            )
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if times == "auto":
            times = None if probability is not None else 1
        if times is not None and (not isinstance(times, int) or times < 1):
            raise ValueError(
                f"times must be a number of calls (at least 1), None or 'auto', got {times!r}"
            )
        rng = random.Random(seed) if probability is not None else None  # noqa: S311
        rule = Rule(op, fault, times, probability, rng)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forget all planned faults (the call log stays)."""
        self.rules.clear()

    def calls_of(self, operation: str) -> list[Call]:
        """Return the recorded calls of ``operation``."""
        op = self.operation_name(operation)
        return [c for c in self.calls if op in ("*", c.operation)]

    def _next_fault(self, operation: str) -> Fault | None:
        for rule in self.rules:
            if rule.matches(operation):
                return rule.fault
        return None

    async def _run(
        self,
        operation: str,
        params: dict[str, Any],
        send: Perform,
        context: Callable[[Call], FaultContext],
    ) -> Any:
        """Record one call of ``operation`` and run it under the next planned fault."""
        record = Call(operation=operation, params=dict(params))
        self.calls.append(record)
        fault = self._next_fault(operation)
        record.fault = repr(fault) if fault is not None else None

        async def perform() -> Any:
            record.sent = True
            return await send()

        try:
            result = await (perform() if fault is None else fault.apply(perform, context(record)))
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                record.outcome = "cancelled"
            elif record.outcome == "pending":
                record.outcome = describe_error(exc)
            raise
        else:
            if record.outcome == "pending":
                record.outcome = "ok"
            return result
        finally:
            record.finished = time.monotonic()
