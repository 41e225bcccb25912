"""Acquiring (design.md §4 and §5): the attempt loop, handing out a grant, giving up.

`acquire()` sends token-conditioned acquire writes until one grants the lease, the key
stays held past the caller's limit, or the store fails for good. Everything one call
learns along the way lives in its `Acquisition`: the token and record version it writes,
what it saw of the holder, and whether a write of its own may be in force, which decides
whether it must be undone (`_undo.undo`) when the call ends without a lease.
"""

from __future__ import annotations

import math

import anyio

from ._engine import Engine, Unreadable
from ._exceptions import LeaseError, LeaseHeldError, LeaseStoreError, LeaseTimeoutError
from ._lease import Lease, utc_from_ms
from ._pacing import Pacing
from ._takeover import VersionWatch, retry_after
from ._timing import Timing, Unanswered
from ._undo import undo
from ._wait_report import WaitReport
from .store import DataUpdate, Outcome, Record

__all__ = ["acquire"]


class Acquisition:
    """The state of one acquire() call, kept across all its polls and retries."""

    __slots__ = (
        "contended",
        "failure",
        "failures",
        "holder",
        "holder_read_at",
        "in_flight",
        "in_network",
        "maybe_ours",
        "report",
        "token",
        "unanswered",
        "version",
        "watch",
    )

    def __init__(self, key: str, token: str, version: str) -> None:
        self.report = WaitReport(key)  # what the wait tells the logs and the hooks
        self.token = token
        self.version = version
        self.watch = VersionWatch()
        self.holder: Record | None = None  # the holder found by the last refusal
        self.holder_read_at = 0.0  # when its record was read (the send, monotonic)
        self.failure: LeaseStoreError | None = None
        self.failures = 0
        self.maybe_ours = False  # a write of ours may be in force: undo unless handed out
        self.in_flight = False
        # A send of ours may still arrive (unanswered, or re-sent by the SDK): undo (revoke)
        # unless handed out, even after a refusal.
        self.in_network = False
        # A waiter may have started timing our version from an unanswered send: a grant
        # with this version counts from the earliest one.
        self.unanswered = Unanswered()
        self.contended = 0  # attempts that found another holder

    @property
    def needs_undo(self) -> bool:
        """Whether a write of this call may be in force or still on its way."""
        return self.maybe_ours or self.in_flight or self.in_network

    def unknown(self, sent_at: float, suspended: float) -> None:
        """Note an attempt that may have been applied although we got no answer."""
        self.maybe_ours = True
        self.in_network = True
        self.unanswered.note(sent_at, suspended)

    def refused(self, fresh_version: str) -> None:
        """The store refused the attempt and the item is not ours: nothing of ours is in force.

        A waiter may have been timing our version since an earlier attempt applied it
        unanswered and was since taken over: a record version is written by at most one
        grant, so the next attempt writes `fresh_version`.
        """
        self.maybe_ours = False
        self.failures = 0
        self.unanswered.clear()
        self.version = fresh_version

    def restart(self, token: str, version: str) -> None:
        """Go on as a new acquire, after a grant of ours that could not be handed out was undone."""
        self.token, self.version = token, version
        self.maybe_ours = self.in_network = False
        self.unanswered.clear()

    def backoff(self, pacing: Pacing) -> float:
        """The pause before the next attempt after a failure, counting failures in a row."""
        delay = pacing.backoff(self.failures)
        self.failures += 1
        return delay


async def acquire(
    engine: Engine, key: str, timing: Timing, limit: float | None, data: DataUpdate
) -> Lease:
    """Take the lease on `key`, waiting up to `limit` seconds (None: without a limit)."""
    engine.bind_loop()
    state = Acquisition(key, engine.new_token(), engine.new_token())
    started = anyio.current_time()
    give_up_at = math.inf if limit is None else started + limit
    await _check_table(engine, give_up_at, state)
    events = engine.events
    try:
        while True:
            result = await _attempt(
                engine, key, state, timing=timing, data=data, limit=limit, give_up_at=give_up_at
            )
            if isinstance(result, Lease):
                if events.listening:
                    result._on_lost = engine.tell_lost
                    duration = anyio.current_time() - started
                    if state.contended:
                        events.emit("waited", key, duration=duration, reason="acquired")
                    events.emit("acquired", key, fence=result.fence, duration=duration)
                return result
            now = anyio.current_time()
            if now >= give_up_at:
                raise _give_up(engine, key, limit, state)  # noqa: TRY301 (undo below applies)
            await anyio.sleep(min(result, give_up_at - now))
    except BaseException as error:
        if state.needs_undo:
            await undo(engine, key, state.token, data)
        if events.listening and state.contended:
            reason = "timeout" if isinstance(error, LeaseHeldError) else "failed"
            events.emit("waited", key, duration=anyio.current_time() - started, reason=reason)
        raise


async def _check_table(engine: Engine, give_up_at: float, state: Acquisition) -> None:
    """Check the table before the first acquire, retrying transient failures until then."""
    while True:
        try:
            await engine.ensure_checked()
        except LeaseStoreError as error:
            now = anyio.current_time()
            if not error.transient or now >= give_up_at:
                raise
            state.report.store_failed(engine, error, now)
            await anyio.sleep(min(state.backoff(engine.pacing), give_up_at - now))
        else:
            state.failures = 0
            state.report.answered(anyio.current_time())
            return


async def _attempt(
    engine: Engine,
    key: str,
    state: Acquisition,
    *,
    timing: Timing,
    data: DataUpdate,
    limit: float | None,
    give_up_at: float,
) -> Lease | float:
    """One acquire request: the lease, or how long to wait before the next try."""
    state.failure = None
    first_unanswered = state.unanswered.sent_at
    if first_unanswered is not None and anyio.current_time() >= timing.deadline(first_unanswered):
        # A grant of this token could no longer be handed out: undo whatever of it is in
        # force and go on with a fresh token, whose validity counts from its own send.
        await _abandon(engine, key, state, data)
    sent_at, suspended = anyio.current_time(), engine.clocks.suspended()
    allowance = engine.pacing.allowance(limit, give_up_at - sent_at)
    outcome = await _send(engine, key, state, timing, data=data, allowance=allowance)
    now = anyio.current_time()
    if outcome is None:
        state.unknown(sent_at, suspended)
        if state.failure is None:  # the request got no answer in the time allowed
            state.failure = _no_answer("UpdateItem", now - sent_at)
        state.report.store_failed(engine, state.failure, now)
        return state.backoff(engine.pacing)
    granted: Record | Unreadable | None = outcome.record
    read_at = sent_at  # when the store judged the record it returned
    if not outcome.applied and granted is None:
        read_at = anyio.current_time()
        granted = await engine.read_back(key)
    if isinstance(granted, Unreadable):  # refused, and who holds it could not be read
        state.report.store_failed(engine, granted.error, anyio.current_time())
    else:
        state.report.answered(now)
    if not outcome.applied:
        if not isinstance(granted, Record) or granted.token != state.token:
            return _contended(engine, key, granted, state, read_at, resent=outcome.resent)
        if granted.version != state.version:
            # An older write of this acquire landed late: undo it, start afresh.
            await _abandon(engine, key, state, data)
            return state.backoff(engine.pacing)
        # Refused, yet our token and version are in force: an earlier send of this write
        # (ours, or the SDK's re-send of this one) applied. That is our grant.
    assert isinstance(granted, Record)  # noqa: S101
    state.maybe_ours = True  # ours in force: undone if anything stops it being handed out
    lease = _hand_out(engine, granted, state, timing, sent_at=sent_at, suspended=suspended)
    if lease is not None:
        return lease
    # The answer came after the lease it granted had run out: not handed out.
    received_at = anyio.current_time()
    await _abandon(engine, key, state, data)
    state.failure = LeaseStoreError(
        f"UpdateItem answered after {received_at - sent_at:.3f} s, longer than the "
        f"lease lasts ({timing.lasts:.3f} s)",
        operation="UpdateItem",
        transient=True,
        maybe_applied=True,
    )
    state.report.store_failed(engine, state.failure, received_at)
    return state.backoff(engine.pacing)


def _hand_out(
    engine: Engine,
    record: Record,
    state: Acquisition,
    timing: Timing,
    *,
    sent_at: float,
    suspended: float,
) -> Lease | None:
    """The lease granted in `record`, or None if its answer came too late to use it."""
    if record.fence is None:
        raise LeaseStoreError(
            f"the item of lease {record.key!r} holds a fence that is not an integer, so "
            "no fenced lease can be handed out: repair or remove its fence attribute "
            "(a missing fence is seeded again from the clock)",
            operation="UpdateItem",
            transient=False,
            maybe_applied=True,
        )
    # Count from the earliest attempt that may have written this version.
    sent_at, suspended = state.unanswered.origin(sent_at, suspended)
    lease = Lease(
        record=record,
        timing=timing,
        sent_at=sent_at,
        suspended=engine.clocks.suspended,
        suspended_at_send=suspended,
    )
    if anyio.current_time() >= lease._valid_until:
        return None
    state.maybe_ours = state.in_network = False
    return lease


async def _abandon(engine: Engine, key: str, state: Acquisition, data: DataUpdate) -> None:
    """Undo a grant of ours that can no longer be handed out; go on with a fresh token.

    Re-taking it with the same token would write the data found a second time over what
    the undo must put back; a fresh token is a fresh grant, applied exactly once.
    """
    await undo(engine, key, state.token, data)
    state.restart(engine.new_token(), engine.new_token())


def _contended(
    engine: Engine,
    key: str,
    found: Record | Unreadable | None,
    state: Acquisition,
    read_at: float,
    *,
    resent: bool,
) -> float:
    """After a refusal that is not ours: note the holder, and how long to wait."""
    if resent:
        state.in_network = True  # an earlier send of this attempt may yet arrive
    state.refused(engine.new_token())
    if isinstance(found, Unreadable):
        return engine.pacing.poll_interval
    state.holder, state.holder_read_at = found, read_at
    if found is None or found.token is None:
        return state.backoff(engine.pacing)  # freed in between: try again soon
    now = anyio.current_time()
    state.watch.observe(found, now)
    state.contended += 1
    wait = _retry_after(engine, found, state, now)
    state.report.held(found, wait)
    if engine.events.listening:
        engine.events.emit(
            "contended", key, fence=found.fence, holder=found.owner, retry_after=wait
        )
    return engine.pacing.poll(wait)


def _retry_after(engine: Engine, holder: Record, state: Acquisition, now: float) -> float:
    return retry_after(
        holder,
        state.watch,
        now=now,
        read_at=state.holder_read_at,
        default=engine.pacing.poll_interval,
    )


async def _send(
    engine: Engine,
    key: str,
    state: Acquisition,
    timing: Timing,
    *,
    data: DataUpdate,
    allowance: float,
) -> Outcome | None:
    """One acquire request; None when it failed transiently or got no answer in time."""
    now = engine.now()
    seen = state.watch.unchanged(anyio.current_time())
    state.in_flight = True
    with anyio.move_on_after(allowance):
        try:
            outcome = await engine.store.acquire(
                key,
                owner=engine.owner,
                token=state.token,
                version=state.version,
                ttl=timing.ttl,
                seen_version=seen,
                data=data,
                now=now,
            )
        except LeaseStoreError as error:
            state.in_flight = False
            if not error.transient:
                if error.maybe_applied:
                    state.maybe_ours = True
                raise
            # botocore may have retried an applied write before this final error.
            state.failure = error
            return None
        state.in_flight = False
        return outcome
    # No answer in the time allowed. (If the caller itself was cancelled, in_flight stays
    # set and the acquire's undo runs.)
    state.in_flight = False
    return None


def _give_up(engine: Engine, key: str, limit: float | None, state: Acquisition) -> LeaseError:
    """The error an acquire ends with: the last store failure, or who holds the key."""
    if state.failure is not None:
        return state.failure
    holder = state.holder
    owner = None if holder is None else holder.owner
    expires = (
        None
        if holder is None or holder.expires_at_ms is None
        else utc_from_ms(holder.expires_at_ms)
    )
    wait = (
        engine.pacing.poll_interval
        if holder is None
        else _retry_after(engine, holder, state, anyio.current_time())
    )
    until = "" if expires is None else f" until {expires.isoformat()}"
    message = f"lease {key!r} is held by {owner!r}{until}; it may be taken over in {wait:.3f} s"
    if limit == 0:
        return LeaseHeldError(message, key=key, owner=owner, expires_at=expires, retry_after=wait)
    return LeaseTimeoutError(
        f"timed out after {limit} s: {message}",
        key=key,
        owner=owner,
        expires_at=expires,
        retry_after=wait,
    )


def _no_answer(operation: str, waited: float) -> LeaseStoreError:
    return LeaseStoreError(
        f"{operation} got no answer within {max(waited, 0.0):.3f} s",
        operation=operation,
        transient=True,
        maybe_applied=True,
    )
