"""Failover: how soon a key is granted again after its holder is SIGKILLed.

The holder is a child process (`_holder.py`) that takes the key with ``manager.lease()``
and heartbeats until killed, with the same ttl, clock-skew bound and poll interval as the
contenders here. Two scenarios, each repeated:

- *waiting contender*: a contender in this process is already polling the key when the
  holder dies. The kill comes right after one of the holder's heartbeats, so the stored
  expiry is as late as it gets: the worst case. Measured from the kill to the grant, against
  the bound ``ttl + max_clock_skew + poll_interval``: the wall-clock rule frees the key
  ``max_clock_skew`` after the stored expiry and the waiter notices at its next poll. The
  version rule (a full ttl after the waiter first saw the last heartbeat's version) may come
  sooner; each kill records which rule it was. Not granted within twice the bound raises
  AssertionError.
- *newcomer after expiry*: once the dead holder's lease has surely expired (``ttl +
  max_clock_skew`` + 0.2 s after the kill), a new manager acquires: time from its first
  attempt to the grant, and the requests it took (one: the wall-clock rule lets the very
  first write through), against one raw consistent ``GetItem`` through the same client.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from aiolease import LeaseEvent, LeaseManager

from ._common import Env, RequestCounter, Row

__all__ = ["run"]

SECTION = "failover"
TTL = 2.0
MAX_CLOCK_SKEW = 0.2
POLL_INTERVAL = 0.05
BOUND = TTL + MAX_CLOCK_SKEW + POLL_INTERVAL
SLACK = 1.0  # what the safety harness allows on top of the bound for scheduling
EXPIRED_AFTER = TTL + MAX_CLOCK_SKEW + 0.2  # the newcomer comes this long after the kill
HOLDER = Path(__file__).resolve().with_name("_holder.py")
STARTUP_TIMEOUT = 60.0


@dataclass(eq=False)
class _Holder:
    """A running holder process and its output, line by line."""

    process: Process
    output: BufferedByteReceiveStream

    async def line(self) -> str:
        with anyio.fail_after(STARTUP_TIMEOUT):
            try:
                return (await self.output.receive_until(b"\n", 1024)).decode()
            except anyio.IncompleteRead:
                code = await self.process.wait()
                raise RuntimeError(f"the holder process exited with code {code}") from None

    async def held(self) -> int:
        """Wait until the holder has the lease; return its fence."""
        line = await self.line()
        if not line.startswith("held "):
            raise RuntimeError(f"unexpected line from the holder process: {line!r}")
        return int(line.split()[1])

    async def refreshed(self) -> float:
        """Wait until the holder reports its next heartbeat; return the stored expiry."""
        while True:
            line = await self.line()
            if line.startswith("refreshed "):
                return float(line.split()[1])

    def kill(self) -> float:
        """SIGKILL the holder; return the monotonic time of the kill."""
        killed = anyio.current_time()
        self.process.send_signal(signal.SIGKILL)
        return killed


@contextlib.asynccontextmanager
async def _holder(env: Env, key: str) -> AsyncIterator[_Holder]:
    """Start a holder process for `key`; it is killed and reaped on every way out."""
    process = await anyio.open_process(
        [
            sys.executable,
            str(HOLDER),
            env.endpoint_url,
            env.table,
            key,
            str(TTL),
            str(MAX_CLOCK_SKEW),
            str(POLL_INTERVAL),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=None,  # its warnings, if any, show up with ours
    )
    try:
        assert process.stdout is not None
        yield _Holder(process, BufferedByteReceiveStream(process.stdout))
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await process.wait()
            await process.aclose()


def _manager(env: Env, hooks: list[Callable[[LeaseEvent], object]] | None = None) -> LeaseManager:
    return env.manager(
        default_ttl=TTL,
        max_clock_skew=MAX_CLOCK_SKEW,
        poll_interval=POLL_INTERVAL,
        hooks=hooks or [],
    )


@dataclass(frozen=True, slots=True)
class _Takeover:
    """How long a takeover took, in how many requests, and which rule allowed it."""

    seconds: float
    requests: int
    version_rule: bool = False  # granted before the wall-clock rule could have fired


async def _waiting_contender(env: Env) -> _Takeover:
    """Kill the holder while a contender waits; time from the kill to that contender's grant."""
    key = f"failover:waiting:{secrets.token_hex(4)}"
    contended = anyio.Event()
    granted = anyio.Event()
    counter = RequestCounter()
    grant: list[tuple[float, float, int, int]] = []

    def hook(event: LeaseEvent) -> None:
        if event.kind == "contended":
            contended.set()

    async def wait() -> None:
        async with manager.lease(key) as lease:
            grant.append((anyio.current_time(), time.time(), lease.fence, counter.total()))
            granted.set()

    manager = _manager(env, [hook])
    await manager.get(key)  # the manager's one-off DescribeTable, before anything is timed
    async with _holder(env, key) as holder:
        held_fence = await holder.held()
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await contended.wait()  # the contender has found the key held and polls it
            expires_at = await holder.refreshed()  # kill right after a heartbeat

            with counter.attached(env.client):
                killed = holder.kill()
                with anyio.move_on_after(2 * BOUND):
                    await granted.wait()
            group.cancel_scope.cancel()
    if not grant:
        raise AssertionError(
            f"the waiting contender was not granted {key!r} within {2 * BOUND:.2f} s of the "
            f"holder's kill (twice the bound of {BOUND:.2f} s)"
        )
    at, wall, fence, requests = grant[0]
    if fence <= held_fence:
        raise AssertionError(f"fence {fence} after the killed holder's {held_fence}")
    # Same host, same wall clock: before expiry + skew only the version rule can have fired.
    return _Takeover(at - killed, requests, version_rule=wall < expires_at + MAX_CLOCK_SKEW)


async def _newcomer(env: Env) -> tuple[_Takeover, float]:
    """Kill the holder, let its lease expire, then time a new manager's acquire.

    Returns the takeover and the wall time of one raw consistent GetItem, taken just before.
    """
    key = f"failover:newcomer:{secrets.token_hex(4)}"
    async with _holder(env, key) as holder:
        held_fence = await holder.held()
        killed = holder.kill()
        await holder.process.wait()
    await anyio.sleep(max(0.0, killed + EXPIRED_AFTER - anyio.current_time()))
    manager = _manager(env)
    if (info := await manager.get(key)) is not None:  # also its one-off DescribeTable
        raise AssertionError(
            f"{key!r} still shows as held {EXPIRED_AFTER} s after the kill: {info}"
        )
    raw = []
    for _ in range(3):
        started = anyio.current_time()
        await env.client.get_item(TableName=env.table, Key={"pk": {"S": key}}, ConsistentRead=True)
        raw.append(anyio.current_time() - started)
    counter = RequestCounter()
    with counter.attached(env.client):
        started = anyio.current_time()
        lease = await manager.acquire(key, timeout=BOUND)
        took = anyio.current_time() - started
    await manager.release(lease)
    if lease.fence <= held_fence:
        raise AssertionError(f"fence {lease.fence} after the killed holder's {held_fence}")
    return _Takeover(took, counter.total()), statistics.median(raw)


async def run(env: Env, *, quick: bool = False, say: Callable[[str], object] = print) -> list[Row]:
    """Measure and return the failover rows."""
    rounds = 2 if quick else 5
    waiting: list[_Takeover] = []
    newcomers: list[_Takeover] = []
    raw: list[float] = []
    for r in range(rounds):
        waiting.append(await _waiting_contender(env))
        newcomer, raw_get = await _newcomer(env)
        newcomers.append(newcomer)
        raw.append(raw_get)
        say(
            f"  failover round {r + 1}/{rounds}: waiting contender {waiting[-1].seconds:.3f} s, "
            f"newcomer {newcomer.seconds * 1000:.1f} ms in {newcomer.requests} request(s)"
        )
    return _rows(waiting, newcomers, raw)


def _rows(waiting: list[_Takeover], newcomers: list[_Takeover], raw: list[float]) -> list[Row]:
    times = [t.seconds for t in waiting]
    by_version = sum(t.version_rule for t in waiting)
    rules = f"{by_version} times, the wall-clock rule {len(waiting) - by_version}"
    worst = max(times)
    verdict = (
        "within the bound"
        if worst <= BOUND
        else f"ABOVE the bound by {worst - BOUND:.3f} s"
        + ("" if worst <= BOUND + SLACK else f", beyond the {SLACK:g} s slack")
    )
    settings = f"ttl {TTL:g} s, max_clock_skew {MAX_CLOCK_SKEW:g} s, poll {POLL_INTERVAL:g} s"
    bound_name = "ttl + max_clock_skew + poll_interval"
    newcomer_ms = [t.seconds * 1000 for t in newcomers]
    requests = [t.requests for t in newcomers]
    return [
        Row(
            SECTION,
            "waiting contender: holder killed -> grant, median",
            statistics.median(times),
            "s",
            BOUND,
            bound_name,
            note=(
                f"{len(times)} kills, each right after a heartbeat (latest stored expiry); "
                f"{settings}; freed by the version rule {rules}; the waiter sent a median "
                f"{statistics.median(t.requests for t in waiting):.0f} requests meanwhile"
            ),
        ),
        Row(
            SECTION,
            "waiting contender: holder killed -> grant, max",
            worst,
            "s",
            BOUND,
            bound_name,
            note=verdict,
        ),
        Row(
            SECTION,
            "newcomer after expiry: first attempt -> grant, median",
            statistics.median(newcomer_ms),
            "ms",
            statistics.median(raw) * 1000,
            "one raw consistent GetItem",
            note=(
                f"{len(newcomers)} newcomers, each {EXPIRED_AFTER:g} s after the kill; "
                f"max {max(newcomer_ms):.1f} ms"
            ),
        ),
        Row(
            SECTION,
            "newcomer after expiry: requests to the grant, max",
            max(requests),
            "requests",
            1,
            "one conditional write",
            note=f"median {statistics.median(requests):g}",
        ),
    ]
