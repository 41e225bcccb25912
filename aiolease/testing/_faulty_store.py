"""Fault injection at the store seam: :class:`FaultyStore` and the faults it applies.

A store fault acts on one store operation (``acquire``, ``refresh``...) and fails it the
way a store reports failure: with a `LeaseStoreError` that says whether retrying can heal
it and whether the write may have been applied. So the same fault runs on every store,
in-memory or remote, and a test of the manager's fault handling runs on all of them.
Like the client's faults, none fakes a refusal: that comes from the store itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Final

from aiolease._exceptions import LeaseStoreError
from aiolease.store import OPERATIONS, Outcome

from ._fault_plans import Call, Fault, FaultContext, FaultPlan, Perform, Where, describe_error

if TYPE_CHECKING:
    from aiolease.store import Capability, DataUpdate, Now, Page, Record, Store

__all__ = [
    "STORE_OPERATIONS",
    "FaultyStore",
    "denied",
    "lose_answer",
    "resend",
    "unavailable",
]

#: The store operations :class:`FaultyStore` intercepts.
STORE_OPERATIONS: Final = frozenset(OPERATIONS)


def _error(
    ctx: FaultContext, cause: OSError, *, transient: bool, maybe_applied: bool
) -> LeaseStoreError:
    """The error a store raises, with the driver's error as its cause, as real ones have."""
    error = LeaseStoreError(
        f"{ctx.operation} on {ctx.endpoint_url!r}: {cause} (injected by FaultyStore)",
        operation=ctx.operation,
        transient=transient,
        maybe_applied=maybe_applied,
    )
    error.__cause__ = cause
    return error


class _StoreFault(Fault):
    acts_on: ClassVar[frozenset[Where]] = frozenset({"store"})


class LoseAnswer(_StoreFault):
    """Apply the operation, then fail it as if its answer was lost."""

    name = "lose_answer"

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        try:
            await perform()
        except Exception as exc:  # noqa: BLE001 - any answer is lost, errors included
            ctx.call.outcome = f"dropped:{describe_error(exc)}"
        else:
            ctx.call.outcome = "dropped:ok"
        raise _error(ctx, TimeoutError("the answer was lost"), transient=True, maybe_applied=True)


class Unavailable(_StoreFault):
    """Fail the operation before it reaches the store: nothing is applied."""

    name = "unavailable"

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        ctx.call.outcome = "fault:unavailable"
        raise _error(
            ctx,
            ConnectionRefusedError("the store is unavailable"),
            transient=True,
            maybe_applied=False,
        )


class Denied(_StoreFault):
    """Fail the operation with an error retrying cannot heal (say, access denied)."""

    name = "denied"

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:  # noqa: ARG002
        ctx.call.outcome = "fault:denied"
        raise _error(ctx, PermissionError("access denied"), transient=False, maybe_applied=False)


class Resend(_StoreFault):
    """Apply the operation twice, as a driver that re-sent it; answer with the second."""

    name = "resend"

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        with contextlib.suppress(LeaseStoreError):  # a driver re-sends after a failure too
            await perform()
        try:
            result = await perform()
        except Exception as exc:
            ctx.call.outcome = f"resent:{describe_error(exc)}"
            raise
        ctx.call.outcome = "resent:ok"
        if isinstance(result, Outcome):
            result = dataclasses.replace(result, resent=True)  # as the driver reports it
        return result


def lose_answer() -> Fault:
    """Apply the operation, then raise a transient `LeaseStoreError` with ``maybe_applied``.

    The store applied the write (or refused it) but the caller cannot know which. The
    call's outcome is ``"dropped:ok"`` or ``"dropped:error:<Code>"``.
    """
    return LoseAnswer()


def unavailable() -> Fault:
    """Raise a transient `LeaseStoreError` without reaching the store: nothing is applied."""
    return Unavailable()


def denied() -> Fault:
    """Raise a `LeaseStoreError` that retrying cannot heal, without reaching the store."""
    return Denied()


def resend() -> Fault:
    """Apply the operation twice and answer with the second application's answer.

    A write the store applied the first time is then refused by its own condition, or
    recognised (an acquire's refusal shows the sender's own token).
    """
    return Resend()


class FaultyStore(FaultPlan):
    """A lease store wrapper that injects planned faults and records every operation.

    Use it wherever a store goes, e.g. ``LeaseManager(FaultyStore(MemoryStore()))`` or
    ``LeaseManager(FaultyStore(DynamoDBStore(client, "leases")))``, then :meth:`plan`
    faults for the operations of your choice (one of :data:`STORE_OPERATIONS`, or
    ``"*"``): :func:`lose_answer`, :func:`unavailable`, :func:`denied`, :func:`resend`,
    :func:`latency` and :func:`hang`. Every operation is recorded in :attr:`calls`.
    """

    where: ClassVar[Where] = "store"
    operations = STORE_OPERATIONS

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.wrapped: Store = store
        self.table: str = store.table
        self.location: str = store.location
        self.capabilities: frozenset[Capability] = store.capabilities

    def __repr__(self) -> str:
        return f"<FaultyStore around {self.wrapped!r}: {len(self.rules)} rules>"

    async def _call(self, operation: str, params: dict[str, Any]) -> Any:
        method = getattr(self.wrapped, operation)

        def context(record: Call) -> FaultContext:
            return FaultContext(
                operation=operation,
                api_name=operation,
                endpoint_url=self.table,
                client=self.wrapped,
                call=record,
            )

        return await self._run(operation, params, lambda: method(**params), context)

    def check_options(self, *, max_clock_skew: float) -> None:
        """Pass through: the wrapped store's own check."""
        self.wrapped.check_options(max_clock_skew=max_clock_skew)

    async def check_table(self) -> None:
        """The wrapped store's `check_table`, under the planned faults."""
        await self._call("check_table", {})

    async def create_table(self) -> bool:
        """The wrapped store's `create_table`, under the planned faults."""
        return bool(await self._call("create_table", {}))

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
        """The wrapped store's `acquire`, under the planned faults."""
        params = {
            "key": key,
            "owner": owner,
            "token": token,
            "version": version,
            "ttl": ttl,
            "seen_version": seen_version,
            "data": data,
            "now": now,
        }
        outcome: Outcome = await self._call("acquire", params)
        return outcome

    async def refresh(
        self,
        key: str,
        *,
        token: str,
        version: str,
        sequence: int,
        ttl: float,
        data: DataUpdate,
        now: Now,
    ) -> Outcome:
        """The wrapped store's `refresh`, under the planned faults."""
        params = {
            "key": key,
            "token": token,
            "version": version,
            "sequence": sequence,
            "ttl": ttl,
            "data": data,
            "now": now,
        }
        outcome: Outcome = await self._call("refresh", params)
        return outcome

    async def release(self, key: str, *, token: str, data: DataUpdate, now: Now) -> Outcome:
        """The wrapped store's `release`, under the planned faults."""
        params = {"key": key, "token": token, "data": data, "now": now}
        outcome: Outcome = await self._call("release", params)
        return outcome

    async def break_lease(
        self, key: str, *, token: str, fence: int | None, marker: str, now: Now
    ) -> Outcome:
        """The wrapped store's `break_lease`, under the planned faults."""
        params = {"key": key, "token": token, "fence": fence, "marker": marker, "now": now}
        outcome: Outcome = await self._call("break_lease", params)
        return outcome

    async def revoke(self, key: str, *, token: str, previous: tuple[str, ...], now: Now) -> Outcome:
        """The wrapped store's `revoke`, under the planned faults."""
        params = {"key": key, "token": token, "previous": previous, "now": now}
        outcome: Outcome = await self._call("revoke", params)
        return outcome

    async def get(self, key: str, *, now: Now) -> Record | None:
        """The wrapped store's `get`, under the planned faults."""
        record: Record | None = await self._call("get", {"key": key, "now": now})
        return record

    async def list_page(self, prefix: str, *, cursor: Any, now: Now) -> Page:
        """The wrapped store's `list_page`, under the planned faults."""
        page: Page = await self._call("list_page", {"prefix": prefix, "cursor": cursor, "now": now})
        return page
