"""``aiolease demo``: workers compete for keys on an embedded DynamoDB, and one holder crashes.

Everything runs in this process: moto's DynamoDB server (requests serialised, so that
conditional writes are atomic), the lease table, and the workers, which are tasks with
one :class:`~aiolease.LeaseManager` (one owner) each, as separate processes would have.

A worker repeatedly tries every key once (``timeout=0``), in random order, and sleeps one
``poll_interval`` when all are held. It holds a key for a short random time, writing to
an in-memory fenced resource that rejects any fence lower than the highest it has seen,
then releases it and leaves that key to the others for a moment. There are more workers
than keys, so some worker is always polling.

One worker crashes: it takes a key with ``acquire()`` on a manager that is not running
(so nothing heartbeats it), works for less than a heartbeat interval, and then never
heartbeats or releases again, as a process killed at that point. The others take the key
over once the lease has lapsed by its stored expiry plus ``max_clock_skew``, so the
failover is bounded by ``ttl + max_clock_skew + poll_interval``. A late write with the
crashed holder's fence then reaches the resource and is rejected.

The run checks what it shows: per key, fences strictly increase in grant order; no two
holders of a key were active at once (a crashed holder counts as active until its local
deadline); every worker got a grant; the failover stayed within its bound; and only the
late write was rejected.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from aiolease._exceptions import LeaseError, LeaseHeldError, LeaseLostError
from aiolease._lease import Lease
from aiolease._manager import LeaseManager

__all__ = ["DemoOptions", "run_demo"]

KEY_NAMES: Final = ("orders", "invoices", "emails", "reports", "backups", "billing")
MAX_CLOCK_SKEW: Final = 0.2
POLL_INTERVAL: Final = 0.1
HOLD_TIME: Final = (0.3, 1.2)  # seconds a worker holds a key
COOLDOWN: Final = (0.2, 0.8)  # seconds a worker leaves the key it released to others
WRITE_EVERY: Final = 0.15  # seconds between a holder's writes to the resource
CRASH_AT: Final = 0.3  # fraction of the run after which one worker crashes
RESTART_AFTER: Final = 1.0  # seconds after the late write before the crashed worker restarts
SHORT_FENCE: Final = 10_000  # fences from here on are shown by their last digits


@dataclass(frozen=True)
class DemoOptions:
    """What to run: how many workers and keys, the lease ttl and the run's duration."""

    workers: int = 5
    keys: int = 3
    ttl: float = 2.0
    duration: float = 15.0

    @property
    def bound(self) -> float:
        """The longest a crashed holder's key may stay unavailable."""
        return self.ttl + MAX_CLOCK_SKEW + POLL_INTERVAL

    @property
    def key_names(self) -> list[str]:
        """The keys the workers compete for."""
        named = list(KEY_NAMES[: self.keys])
        return named + [f"key-{i}" for i in range(len(named) + 1, self.keys + 1)]


@dataclass
class _Grant:
    key: str
    worker: str
    fence: int
    start: float
    end: float | None = None  # when its holder stopped acting (crashed: its local deadline)
    writes: int = 0
    crashed: bool = False
    lost: str | None = None


@dataclass
class _Crash:
    worker: str
    key: str
    fence: int
    at: float  # when the worker crashed
    deadline: float  # its lease's local deadline
    failover: float | None = None  # seconds from the crash to the next grant of the key
    taken_by: str | None = None
    next_fence: int | None = None
    late_write_rejected: bool | None = None


@dataclass
class _Resource:
    """A store that remembers the highest fence per key and rejects lower ones."""

    highest: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    rejected: int = 0

    def write(self, key: str, fence: int) -> bool:
        if fence < self.highest.get(key, 0):
            self.rejected += 1
            return False
        self.highest[key] = fence
        self.accepted += 1
        return True


@dataclass
class _Worker:
    name: str
    state: str = "starting"
    grants: int = 0
    cooldown: dict[str, float] = field(default_factory=dict)  # key -> until when


class _Demo:
    def __init__(
        self,
        options: DemoOptions,
        new_manager: Callable[[str], LeaseManager],
        on_event: Callable[[float, str], None],
    ) -> None:
        self.options = options
        self.new_manager = new_manager
        self.on_event = on_event
        self.keys = options.key_names
        self.rng = random.Random()  # noqa: S311  (timing jitter, not security)
        self.workers = [_Worker(f"worker-{i}") for i in range(1, options.workers + 1)]
        self.crasher = self.rng.choice(self.workers).name
        self.holders: dict[str, _Grant | None] = dict.fromkeys(self.keys)
        self.last: dict[str, _Grant | None] = dict.fromkeys(self.keys)
        self.grants: list[_Grant] = []
        self.resource = _Resource()
        self.events: list[tuple[float, str]] = []
        self.crash: _Crash | None = None
        self.failed_over = anyio.Event()
        self.started = 0.0
        self.stop_at = 0.0
        self.finished: float | None = None

    # -- the run ------------------------------------------------------------------------

    def now(self) -> float:
        # The monotonic clock, as anyio's on asyncio; readable from any thread.
        return time.monotonic() - self.started

    def event(self, text: str) -> None:
        at = self.now()
        self.events.append((at, text))
        self.on_event(at, text)

    async def run(self) -> None:
        self.started = time.monotonic()
        self.stop_at = self.options.duration
        async with anyio.create_task_group() as tg:
            for worker in self.workers:
                tg.start_soon(self.work, worker)
        self.finished = self.now()

    def running(self) -> bool:
        # Run on past the duration, within reason, until the crash was taken over.
        if self.crash is not None and self.crash.failover is None:
            return self.now() < self.stop_at + 2 * self.options.bound
        if self.crash is None:
            return self.now() < self.stop_at + self.options.bound
        return self.now() < self.stop_at

    async def work(self, worker: _Worker) -> None:
        manager = self.new_manager(worker.name)
        crash_time = CRASH_AT * self.options.duration
        while self.running():
            if worker.name == self.crasher and self.crash is None and self.now() >= crash_time:
                if await self.crash_on(worker):
                    await self.stay_down(worker)
                    manager = self.new_manager(worker.name)  # a new process, a new manager
                    continue
                took = False
            else:
                took = await self.take_one(worker, manager)
            if not took:
                worker.state = "polling"
                await self.pause(POLL_INTERVAL * self.rng.uniform(0.8, 1.0))
        worker.state = "done"

    async def pause(self, seconds: float) -> None:
        """Sleep, but not past the end of the run (unless it runs on for the failover)."""
        if self.crash is not None and self.crash.failover is None:
            await anyio.sleep(seconds)
        else:
            await anyio.sleep(max(0.0, min(seconds, self.stop_at - self.now())))

    async def take_one(self, worker: _Worker, manager: LeaseManager) -> bool:
        """Try each key once; hold the first one granted. False if all were held.

        A key this worker released a moment ago is left to the others for a while. So
        every worker not holding a key keeps polling the keys it may take, and a lapsed
        lease is taken over within a poll interval.
        """
        worker.state = "polling"
        now = self.now()
        for key in self.rng.sample(self.keys, len(self.keys)):
            if worker.cooldown.get(key, 0.0) > now:
                continue
            try:
                async with manager.lease(key, ttl=self.options.ttl, timeout=0) as lease:
                    await self.hold(worker, lease)
            except LeaseHeldError:
                continue
            except LeaseLostError as lost:
                self.event(f"{worker.name} lost {key} ({lost.reason}); its work was cancelled")
            except LeaseError as error:
                self.event(f"{worker.name}: {error}")
            worker.cooldown[key] = self.now() + self.rng.uniform(*COOLDOWN)
            return True
        return False

    async def hold(self, worker: _Worker, lease: Lease) -> None:
        grant = self.granted(worker, lease)
        try:
            until = time.monotonic() + self.rng.uniform(*HOLD_TIME)
            while True:
                lease.ensure_held()  # right before each side effect
                if self.resource.write(lease.key, lease.fence):
                    grant.writes += 1
                else:
                    self.event(
                        f"the resource rejected a write of {worker.name} "
                        f"(fence {short_fence(lease.fence)})"
                    )
                if time.monotonic() + WRITE_EVERY > until:
                    break
                await anyio.sleep(WRITE_EVERY)
        except LeaseLostError as lost:
            grant.lost = lost.reason
            raise
        finally:
            grant.end = self.now()
            if self.holders[lease.key] is grant:
                self.holders[lease.key] = None
            worker.state = "releasing"

    def granted(self, worker: _Worker, lease: Lease) -> _Grant:
        """Record a grant (and a failover, if it ends a crash)."""
        grant = _Grant(key=lease.key, worker=worker.name, fence=lease.fence, start=self.now())
        previous = self.last[lease.key]
        self.holders[lease.key] = self.last[lease.key] = grant
        self.grants.append(grant)
        worker.grants += 1
        worker.state = f"holding {lease.key}"
        crash = self.crash
        if crash is not None and crash.key == lease.key and crash.failover is None:
            crash.failover = grant.start - crash.at
            crash.taken_by = worker.name
            crash.next_fence = lease.fence
            verdict = "within" if crash.failover <= self.options.bound else "OVER"
            self.event(
                f"{worker.name} took {lease.key} over from crashed {crash.worker} after "
                f"{crash.failover:.2f} s ({verdict} the bound {self.options.bound:.2f} s), "
                f"fence {short_fence(lease.fence)}"
            )
            self.failed_over.set()
        else:
            after = "" if previous is None else f" (previous holder {previous.worker})"
            self.event(f"{worker.name} got {lease.key}, fence {short_fence(lease.fence)}{after}")
        return grant

    async def crash_on(self, worker: _Worker) -> bool:
        """Take a key without a heartbeat, work briefly, then crash. False if none was free."""
        # A manager that is not running (no `async with`): nothing will refresh the lease.
        manager = self.new_manager(worker.name)
        worker.state = "polling"
        for key in self.rng.sample(self.keys, len(self.keys)):
            try:
                lease = await manager.acquire(key, ttl=self.options.ttl, timeout=0)
            except LeaseHeldError:
                continue
            grant = self.granted(worker, lease)
            deadline = self.now() + lease.remaining
            # Work for less than a heartbeat interval, as a process killed before its
            # first refresh, then stop: no heartbeat, no release.
            await anyio.sleep(min(0.3, self.options.ttl / 6))
            if self.resource.write(key, lease.fence):
                grant.writes += 1
            grant.end = deadline  # it could have kept acting until its local deadline
            grant.crashed = True
            self.crash = _Crash(worker.name, key, lease.fence, at=self.now(), deadline=deadline)
            worker.state = "crashed"
            lapses_in = self.options.ttl - (self.now() - grant.start)
            self.event(
                f"{worker.name} CRASHED holding {key} (fence {short_fence(lease.fence)}): "
                f"no heartbeat, no release; its lease lapses in {lapses_in:.2f} s"
            )
            return True
        return False

    async def stay_down(self, worker: _Worker) -> None:
        """After the takeover, deliver the crashed process's late write; then restart."""
        crash = self.crash
        assert crash is not None  # noqa: S101
        with anyio.move_on_after(2 * self.options.bound):
            await self.failed_over.wait()
        if crash.failover is None:
            return
        await anyio.sleep(0.2)
        crash.late_write_rejected = not self.resource.write(crash.key, crash.fence)
        outcome = "rejected" if crash.late_write_rejected else "ACCEPTED"
        self.event(
            f"a late write of crashed {worker.name} with fence {short_fence(crash.fence)} "
            f"reached the resource: {outcome} (it has seen fence "
            f"{short_fence(self.resource.highest[crash.key])})"
        )
        await anyio.sleep(RESTART_AFTER)
        self.event(f"{worker.name} restarted")

    # -- the checks -------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The run's figures and checks, as JSON-ready data."""
        options = self.options
        fences = {key: [g.fence for g in self.grants if g.key == key] for key in self.keys}
        increasing = all(all(a < b for a, b in itertools.pairwise(f)) for f in fences.values())
        overlaps = _overlaps(self.grants)
        per_worker = {w.name: w.grants for w in self.workers}
        crash = self.crash
        failover: dict[str, Any] | None = None
        if crash is not None:
            failover = {
                "worker": crash.worker,
                "key": crash.key,
                "fence": crash.fence,
                "crashed_at": round(crash.at, 3),
                "taken_by": crash.taken_by,
                "next_fence": crash.next_fence,
                "seconds": None if crash.failover is None else round(crash.failover, 3),
                "bound": round(options.bound, 3),
                "late_write_rejected": crash.late_write_rejected,
            }
        late_rejected = crash is not None and crash.late_write_rejected is True
        checks = {
            "fences_strictly_increase": increasing,
            "no_overlaps": overlaps == 0,
            "every_worker_got_a_grant": all(count > 0 for count in per_worker.values()),
            "crash_taken_over": crash is not None and crash.failover is not None,
            "failover_within_bound": crash is not None
            and crash.failover is not None
            and crash.failover <= options.bound,
            "late_write_rejected": late_rejected,
            "only_the_late_write_rejected": self.resource.rejected == (1 if late_rejected else 0),
        }
        return {
            "ok": all(checks.values()),
            "checks": checks,
            "seconds": round(self.finished if self.finished is not None else self.now(), 3),
            "workers": options.workers,
            "keys": self.keys,
            "ttl": options.ttl,
            "max_clock_skew": MAX_CLOCK_SKEW,
            "poll_interval": POLL_INTERVAL,
            "grants_per_worker": per_worker,
            "fences": fences,
            "overlaps": overlaps,
            "failover": failover,
            "lost_leases": sum(1 for g in self.grants if g.lost is not None),
            "writes": {"accepted": self.resource.accepted, "rejected": self.resource.rejected},
            "grants": [
                {
                    "key": g.key,
                    "worker": g.worker,
                    "fence": g.fence,
                    "start": round(g.start, 4),
                    "end": None if g.end is None else round(g.end, 4),
                    "crashed": g.crashed,
                }
                for g in self.grants
            ],
        }


def _overlaps(grants: list[_Grant]) -> int:
    """How many grants of a key began before the previous holder of that key stopped."""
    count = 0
    by_key: dict[str, list[_Grant]] = {}
    for grant in grants:
        by_key.setdefault(grant.key, []).append(grant)
    for held in by_key.values():
        ordered = sorted(held, key=lambda g: g.start)
        latest_end = float("-inf")
        for grant in ordered:
            if grant.start < latest_end:
                count += 1
            latest_end = max(latest_end, grant.end if grant.end is not None else float("inf"))
    return count


# --- running and showing it ------------------------------------------------------------------


def run_demo(options: DemoOptions, *, as_json: bool) -> bool:
    """Run the demo and print it (live on a terminal); return whether its checks held."""
    live = not as_json and sys.stdout.isatty()
    console = Console(highlight=False)
    printed: list[str] = []

    def on_event(at: float, text: str) -> None:
        if not as_json and not live:
            sys.stdout.write(f"{at:6.2f} s  {text}\n")
            sys.stdout.flush()
        printed.append(text)

    summary = anyio.run(_run, options, on_event, console if live else None)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    elif live:
        console.print(_summary_text(summary))
    else:
        sys.stdout.write(_summary_text(summary).plain)
    return bool(summary["ok"])


async def _run(
    options: DemoOptions, on_event: Callable[[float, str], None], console: Console | None
) -> dict[str, Any]:
    from aiolease.testing import local_dynamodb  # noqa: PLC0415  (needs the testing extra)

    async with local_dynamodb(
        table="aiolease-demo",
        retries={"mode": "standard", "total_max_attempts": 3},
        max_pool_connections=4 * options.workers + 4,
    ) as env:

        def new_manager(owner: str) -> LeaseManager:
            return env.manager(
                owner=owner,
                default_ttl=options.ttl,
                max_clock_skew=MAX_CLOCK_SKEW,
                poll_interval=POLL_INTERVAL,
            )

        demo = _Demo(options, new_manager, on_event)
        if console is None:
            await demo.run()
        else:
            # Rendered from the event loop (not Live's thread), where the state changes.
            def view() -> RenderableType:
                return _view(demo, console.height)

            with Live(view(), console=console, auto_refresh=False) as live:
                async with anyio.create_task_group() as tg:

                    async def refresh() -> None:
                        while True:
                            live.update(view(), refresh=True)
                            await anyio.sleep(0.1)

                    tg.start_soon(refresh)
                    await demo.run()
                    tg.cancel_scope.cancel()
                live.update(view(), refresh=True)
        return demo.summary()


def short_fence(fence: int) -> str:
    """A fence by its last digits (…604), so that its +1 steps show.

    A first grant seeds the fence from the clock in microseconds: sixteen digits.
    """
    return str(fence) if fence < SHORT_FENCE else f"…{fence % 1000:03d}"


def _is_landmark(text: str) -> bool:
    """The events the demo is about: the crash, the takeover, the late write."""
    return "CRASHED" in text or "over from crashed" in text or "late write" in text


def _events_shown(events: list[tuple[float, str]], room: int) -> list[tuple[float, str]]:
    """The latest `room` events, the landmarks always among them, in time order."""
    landmarks = [e for e in events if _is_landmark(e[1])][-room:]
    others = [e for e in events if not _is_landmark(e[1])]
    latest = others[-(room - len(landmarks)) :] if room > len(landmarks) else []
    return sorted(landmarks + latest)


def _view(demo: _Demo, height: int = 24) -> RenderableType:
    """The live view, fitting `height` lines of 80 columns or more."""
    options = demo.options
    now = demo.now()
    title = Text.assemble(
        ("aiolease demo", "bold"),
        f"  {options.workers} workers, {options.keys} keys  ttl {options.ttl:g} s, "
        f"skew {MAX_CLOCK_SKEW:g} s, poll {POLL_INTERVAL:g} s  ",
        (f"{min(now, options.duration):4.1f}/{options.duration:g} s", "cyan"),
    )
    compact: dict[str, Any] = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False}
    keys = Table("key", "holder", "fence", "held", "n", **compact)
    for key in demo.keys:
        grant = demo.holders[key]
        count = str(sum(1 for g in demo.grants if g.key == key))
        if grant is None:
            keys.add_row(key, Text("free", style="dim"), "", "", count)
        elif grant.crashed:
            left = options.ttl - (now - grant.start)
            lapse = f"lapses {left:.1f} s" if left > 0 else f"+{MAX_CLOCK_SKEW:g} s skew"
            holder = Text(f"{grant.worker} ✗", style="bold red")
            keys.add_row(key, holder, short_fence(grant.fence), Text(lapse, style="red"), count)
        else:
            holder = Text(grant.worker, style="green")
            keys.add_row(key, holder, short_fence(grant.fence), f"{now - grant.start:.1f} s", count)
    workers = Table("worker", "state", "n", **compact)
    for worker in demo.workers:
        style = "bold red" if worker.state == "crashed" else ""
        workers.add_row(worker.name, Text(worker.state, style=style), str(worker.grants))
    tables = Table.grid(padding=(0, 3))
    tables.add_row(keys, workers)
    # The title, the tables (header, rule, rows), the crash line, the events' heading.
    used = 1 + 2 + max(len(demo.keys), len(demo.workers)) + 1 + 1
    lines = []
    for at, text in _events_shown(demo.events, max(3, height - used)):
        style = "bold red" if "CRASHED" in text else "yellow" if "crashed" in text else ""
        lines.append(Text.assemble((f"{at:5.1f} s ", "dim"), (text, style)))
    events = Text("\n", no_wrap=True, overflow="ellipsis").join(lines)
    return Group(title, tables, _crash_line(demo), Text("events", style="italic"), events)


def _crash_line(demo: _Demo) -> Text:
    crash = demo.crash
    if crash is None:
        after = CRASH_AT * demo.options.duration
        return Text(f"{demo.crasher} will crash holding its next key after {after:.1f} s")
    line = Text(f"{crash.worker} crashed on {crash.key} at {crash.at:.2f} s; ", style="red")
    if crash.failover is None:
        line.append(f"waiting for a takeover ({demo.now() - crash.at:.1f} s so far)")
    else:
        ok = crash.failover <= demo.options.bound
        line.append(
            f"{crash.taken_by} took it over after {crash.failover:.2f} s "
            f"(bound {demo.options.bound:.2f} s)",
            style="green" if ok else "bold red",
        )
    return line


def _summary_text(summary: dict[str, Any]) -> Text:
    checks: dict[str, bool] = summary["checks"]
    lines = Text()
    lines.append(f"\nSummary after {summary['seconds']:.1f} s\n", style="bold")
    grants = ", ".join(f"{w} {n}" for w, n in summary["grants_per_worker"].items())
    lines.append(f"  grants per worker: {grants}\n")
    per_key = ", ".join(f"{k} {len(f)}" for k, f in summary["fences"].items())
    lines.append(
        f"  fences per key strictly increase: {_yes(checks['fences_strictly_increase'])}"
        f" (grants: {per_key})\n"
    )
    lines.append(f"  overlapping holders: {summary['overlaps']}\n")
    failover = summary["failover"]
    if failover is None:
        lines.append("  crash: none happened (the run was too short)\n")
    else:
        lines.append(
            f"  crash: {failover['worker']} on {failover['key']} (fence {failover['fence']}) at "
            f"{failover['crashed_at']:.2f} s\n"
        )
        if failover["seconds"] is None:
            lines.append("  failover: the key was not taken over\n")
        else:
            verdict = "within" if checks["failover_within_bound"] else "OVER"
            lines.append(
                f"  failover: {failover['taken_by']} took it after {failover['seconds']:.2f} s, "
                f"{verdict} the bound ttl + max_clock_skew + poll_interval = "
                f"{failover['bound']:.2f} s (fence {failover['next_fence']})\n"
            )
        lines.append(
            "  late write with the crashed holder's fence rejected: "
            f"{_yes(checks['late_write_rejected'])}\n"
        )
    writes = summary["writes"]
    lines.append(
        f"  resource writes: {writes['accepted']} accepted, {writes['rejected']} rejected; "
        f"leases lost: {summary['lost_leases']}\n"
    )
    if summary["ok"]:
        lines.append("  all checks passed\n", style="bold green")
    else:
        failed = ", ".join(name for name, ok in checks.items() if not ok)
        lines.append(f"  FAILED: {failed}\n", style="bold red")
    return lines


def _yes(value: bool) -> str:
    return "yes" if value else "NO"
