"""Contention: 10 and 100 contenders looping on one key.

Every contender is an asyncio task with a `LeaseManager` of its own (its own owner name),
all sharing this process's one client and event loop. Each loops ``async with
manager.lease(key)``, holds for `HOLD` and leaves the block (release); then it contends
again at once, or after a rest (last point). A scale point ends at a fixed number of grants
or at its time cap, whichever comes first. Figures:

- requests per grant: every HTTP request the client sent (polls included) / grants;
- release -> next grant: from the holder leaving its block (the release is sent) to the
  next acquire returning. A waiter sees the key free only at its next poll, so this is set
  against the poll interval. (Measured from the release's *return* instead, it can come
  out negative when the loop is saturated: the releaser's task resumes after the next
  holder's; that median is given in the note.)
- fairness: Jain's index of the grants per contender, and the share of hand-overs that went
  straight back to the releaser (which needs one round trip, the others a poll).

Exclusion is checked on the way (AssertionError otherwise): in grant order the fences
strictly increase and no hold starts before the previous one ended.
"""

from __future__ import annotations

import math
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import anyio
import anyio.lowlevel

from aiolease import LeaseEvent, LeaseLostError, LeaseManager

from ._common import Env, RequestCounter, Row, loop_lag

__all__ = ["run"]

SECTION = "contention"
TTL = 3.0
POLL_INTERVAL = 0.05
MAX_CLOCK_SKEW = 0.2
HOLD = 0.02


@dataclass(frozen=True, slots=True)
class _Point:
    """One scale point: contenders, their poll interval, their rest after a release, the end."""

    contenders: int
    poll_interval: float
    grants: int  # the run ends after this many grants...
    cap: float  # ...or after this many seconds
    rest: float = 0.0  # pause between leaving the block and contending again

    @property
    def label(self) -> str:
        label = f"{self.contenders} contenders"
        if self.poll_interval != POLL_INTERVAL:
            label += f", {self.poll_interval:g} s poll"
        if self.rest:
            label += f", {self.rest * 1000:.0f} ms rest"
        return label


# 100 waiters polling every 50 ms ask for 2,000 requests/s, more than DynamoDB Local and
# this client manage on two cores: the third point polls every 0.5 s, so that 100 waiters
# send what 10 send at 50 ms. A contender that comes straight back after its release
# often wins again (it needs one round trip, the others a poll); the last point rests one
# poll interval after each release, like a worker that does something else in between.
FULL = (
    _Point(10, POLL_INTERVAL, 400, 20.0),
    _Point(100, POLL_INTERVAL, 800, 20.0),
    _Point(100, 0.5, 600, 20.0),
    _Point(10, POLL_INTERVAL, 400, 20.0, rest=POLL_INTERVAL),
)
QUICK = (
    _Point(10, POLL_INTERVAL, 60, 4.0),
    _Point(100, POLL_INTERVAL, 60, 4.0),
    _Point(100, 0.5, 60, 4.0),
    _Point(10, POLL_INTERVAL, 60, 4.0, rest=POLL_INTERVAL),
)


@dataclass(frozen=True, slots=True)
class _Grant:
    """One completed hold: who, its fence, and when (monotonic seconds)."""

    contender: int
    fence: int
    granted: float  # acquire returned
    body_end: float  # the body finished; the release is sent after this
    released: float  # the block exited: the release completed


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Counts taken at the moment the run ended, before contenders are cancelled."""

    at: float
    cpu: float
    grants: int
    requests: Counter[str]
    events: Counter[str]


@dataclass(eq=False)
class _Run:
    """Shared state of one scale point."""

    target: int
    counter: RequestCounter
    events: Counter[str] = field(default_factory=Counter)
    grants: list[_Grant] = field(default_factory=list)
    lost: int = 0
    start: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    snapshot: _Snapshot | None = None

    def hook(self, event: LeaseEvent) -> None:
        self.events[event.kind] += 1

    def record(self, grant: _Grant) -> None:
        self.grants.append(grant)
        if len(self.grants) >= self.target:
            self.stop()

    def stop(self) -> None:
        """Freeze the counts (synchronously, so nothing slips in) and end the run."""
        if self.snapshot is None:
            self.snapshot = _Snapshot(
                anyio.current_time(),
                time.process_time(),
                len(self.grants),
                Counter(self.counter.counts),
                Counter(self.events),
            )
        self.done.set()


async def _contend(index: int, manager: LeaseManager, key: str, run: _Run, rest: float) -> None:
    await run.start.wait()
    while True:
        try:
            async with manager.lease(key, ttl=TTL) as lease:
                granted = anyio.current_time()
                await anyio.sleep(HOLD)
                body_end = anyio.current_time()
        except LeaseLostError:
            run.lost += 1  # only a loop stalled for the whole lease could cause this
            continue
        run.record(_Grant(index, lease.fence, granted, body_end, anyio.current_time()))
        if rest:
            await anyio.sleep(rest)


def _check_exclusion(grants: Sequence[_Grant]) -> None:
    """Raise AssertionError unless holds never overlap and fences strictly increase."""
    ordered = sorted(grants, key=lambda g: g.granted)
    for before, after in pairwise(ordered):
        if after.fence <= before.fence:
            raise AssertionError(
                f"fence did not increase: {before.fence} (contender {before.contender}) "
                f"then {after.fence} (contender {after.contender})"
            )
        if after.granted < before.body_end:
            raise AssertionError(
                f"two holders at once: contender {after.contender} was granted fence "
                f"{after.fence} {before.body_end - after.granted:.6f} s before contender "
                f"{before.contender} finished holding fence {before.fence}"
            )


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _jain(counts: Sequence[int]) -> float:
    """Jain's fairness index: 1.0 when all are equal, 1/n when one gets everything."""
    total = sum(counts)
    squares = sum(c * c for c in counts)
    return total * total / (len(counts) * squares) if squares else 0.0


async def _scale_point(env: Env, point: _Point, say: Callable[[str], object]) -> list[Row]:
    key = f"contention:{point.contenders}:{secrets.token_hex(4)}"
    run = _Run(point.grants, RequestCounter())
    managers = [
        env.manager(
            owner=f"contender-{i}",
            default_ttl=TTL,
            poll_interval=point.poll_interval,
            max_clock_skew=MAX_CLOCK_SKEW,
            hooks=[run.hook],
        )
        for i in range(point.contenders)
    ]
    for manager in managers:
        await manager.get(key)  # each manager's one-off DescribeTable, outside the count
    lags: list[float] = []
    lag_stop = anyio.Event()
    with run.counter.attached(env.client):
        async with anyio.create_task_group() as group:
            for index, manager in enumerate(managers):
                group.start_soon(_contend, index, manager, key, run, point.rest)
            group.start_soon(lambda: loop_lag(lag_stop, lags, clock=anyio.current_time))
            await anyio.lowlevel.checkpoint()  # let every contender reach its start line
            started, cpu = anyio.current_time(), time.process_time()
            run.start.set()
            with anyio.move_on_after(point.cap):
                await run.done.wait()
            run.stop()
            lag_stop.set()
            group.cancel_scope.cancel()  # releases and undos still run, shielded
    snap = run.snapshot
    assert snap is not None
    _check_exclusion(run.grants)
    elapsed = snap.at - started
    say(f"  contention, {point.label}: {snap.grants} grants in {elapsed:.1f} s")
    return _rows(
        point,
        run.grants[: snap.grants],
        snap,
        elapsed=elapsed,
        cpu=snap.cpu - cpu,
        lags=lags,
        lost=run.lost,
    )


def _rows(
    point: _Point,
    grants: list[_Grant],
    snap: _Snapshot,
    *,
    elapsed: float,
    cpu: float,
    lags: list[float],
    lost: int,
) -> list[Row]:
    """The rows of one scale point; `grants` are those made before the counts froze."""
    label, count = point.label, len(grants)
    requests = sum(snap.requests.values())
    updates = snap.requests["UpdateItem"]
    refreshes = snap.events["refreshed"] + snap.events["refresh_failed"]
    releases = snap.events["released"]
    acquires = updates - releases - refreshes
    ordered = sorted(grants, key=lambda g: g.fence)
    handovers = list(pairwise(ordered))
    gaps = [(b.granted - a.body_end) * 1000 for a, b in handovers]
    release_ms = [(g.released - g.body_end) * 1000 for g in grants]
    after_release = [(b.granted - a.released) * 1000 for a, b in handovers]
    won_back = sum(a.contender == b.contender for a, b in handovers) / len(handovers)
    per = Counter(dict.fromkeys(range(point.contenders), 0))
    per.update(g.contender for g in grants)
    counts = list(per.values())
    mean = count / point.contenders
    poll_ms = point.poll_interval * 1000
    ended = "the time cap" if count < point.grants else "the grant count"
    nominal = point.contenders / (point.poll_interval * 0.9)  # jitter: 0.8-1.0 x interval
    lag = (
        f"event-loop lag median {statistics.median(lags) * 1000:.1f} ms, "
        f"p99 {_percentile(lags, 0.99) * 1000:.0f} ms"
    )
    return [
        Row(
            SECTION,
            f"{label}: requests per grant",
            requests / count,
            "requests",
            2,
            "uncontended acquire + release",
            note=(
                f"{count} grants in {elapsed:.1f} s (ended by {ended}); per grant "
                f"{acquires / count:.1f} acquire attempts, {releases / count:.2f} releases, "
                f"{refreshes / count:.2f} refreshes, {(requests - updates) / count:.2f} others"
            ),
        ),
        Row(
            SECTION,
            f"{label}: release -> next grant, median",
            statistics.median(gaps),
            "ms",
            poll_ms,
            "poll interval",
            note=(
                f"from the holder leaving its block (release sent) to the next acquire "
                f"returning, over {len(gaps)} hand-overs; {won_back:.0%} went back to the "
                f"releaser; from the release's return: median "
                f"{statistics.median(after_release):.1f} ms"
            ),
        ),
        Row(
            SECTION,
            f"{label}: release -> next grant, p99",
            _percentile(gaps, 0.99),
            "ms",
            poll_ms,
            "poll interval",
            note=(
                f"max {max(gaps):.0f} ms; the release request itself took median "
                f"{statistics.median(release_ms):.1f} ms, "
                f"p99 {_percentile(release_ms, 0.99):.0f} ms"
            ),
        ),
        Row(
            SECTION,
            f"{label}: fairness, Jain's index of grants per contender",
            _jain(counts),
            "index",
            1.0,
            "perfectly even",
            note=(
                f"grants per contender min {min(counts)}, max {max(counts)}, mean "
                f"{mean:.1f}; a uniformly random winner would score about "
                f"{mean / (mean + 1):.2f} at this mean"
            ),
        ),
        Row(
            SECTION,
            f"{label}: request rate",
            requests / elapsed,
            "requests/s",
            nominal,
            "every waiter polling on time",
            note=(
                f"{count / elapsed:.0f} grants/s; client CPU {cpu / elapsed:.0%} of a core; {lag}"
                + (f"; {lost} leases lost" if lost else "")
            ),
        ),
    ]


async def run(env: Env, *, quick: bool = False, say: Callable[[str], object] = print) -> list[Row]:
    """Measure and return the contention rows."""
    rows: list[Row] = []
    for point in QUICK if quick else FULL:
        rows.extend(await _scale_point(env, point, say))
    return rows
