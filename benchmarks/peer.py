"""A peer side by side: python-dynamodb-lock against aiolease on the same emulator.

The peer is a thread-based port of the AWS Java lock client: blocking boto3 resource
calls, and two background threads per client (heartbeat sender and checker). Both sides
use the same lease settings (heartbeat every ttl/3) and the peer its own table.

- Throughput: 100 workers each loop acquire -> release on their own key for a fixed
  time: 100 threads sharing one peer client (the way it is meant to be shared) against
  100 asyncio tasks sharing one LeaseManager, using ``lease()`` blocks so that both sides
  heartbeat what they hold. The sides alternate over rounds; ratios are medians of the
  per-round ratios. Client CPU is `time.process_time` (the emulator is another process);
  threads are the peak `threading.active_count()` less the threads alive before that the
  side did not start, plus the calling thread; requests are counted at ``before-send``.
- Takeover: a child process (benchmarks/_peer_holder.py) holds two keys with a 3 s lease
  and is SIGKILLed. A contender already waiting on one key is timed from the kill to its
  grant; once the lease is past ttl + max_clock_skew, a newcomer asks for the other key
  and is timed from its first attempt to its grant.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from aiolease import Lease, LeaseManager

from ._common import ROOT, Env, RequestCounter, Row, median_ratio
from ._peer_holder import (
    AIOLEASE,
    PEER,
    POLL,
    SKEW,
    create_peer_table,
    peer_lock_client,
    peer_resource,
)

__all__ = ["run"]

SECTION = "peer"
PEER_TABLE = "python_dynamodb_lock"
WORKERS = 100
TTL = 10.0  # the throughput leases
TAKEOVER_TTL = 3.0
HEARTBEAT = TAKEOVER_TTL / 3  # both sides' holders refresh this often
SETTLE = 1.0  # the least time the contender waits before the holder is killed
NEWCOMER_AFTER = TAKEOVER_TTL + SKEW + 0.5  # from the kill
ACQUIRE_TIMEOUT = 30.0
HELD_TIMEOUT = 60.0


@dataclass(eq=False)
class _LockedCounter(RequestCounter):
    """A `RequestCounter` that many threads may call at once."""

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, request: Any = None, **kwargs: Any) -> None:
        with self.lock:
            super().__call__(request, **kwargs)


@dataclass(frozen=True)
class _Round:
    """What one side did in one throughput round."""

    cycles: int
    cpu: float
    wall: float
    requests: int
    threads: int

    @property
    def rate(self) -> float:
        return self.cycles / self.wall

    @property
    def cpu_per_cycle(self) -> float:
        return self.cpu / self.cycles

    @property
    def requests_per_cycle(self) -> float:
        return self.requests / self.cycles


class _Stopwatch:
    """Client CPU and wall time between `start()` and `stop()`."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0

    def start(self) -> None:
        gc.collect()
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def stop(self) -> None:
        self.cpu, self.wall = time.process_time() - self.cpu, time.perf_counter() - self.wall


# -- throughput ---------------------------------------------------------------------------


async def _aiolease_round(
    env: Env, manager: LeaseManager, keys: list[str], seconds: float
) -> _Round:
    """One task per key, all started before the clock runs, looping `lease()` blocks."""
    threads_before = threading.active_count()  # the peer's heartbeat threads among them
    go = anyio.Event()
    cycles = [0] * len(keys)
    peaks = [0] * len(keys)
    stop_at = 0.0

    async def worker(index: int, *, task_status: TaskStatus[None]) -> None:
        task_status.started()
        await go.wait()
        done = peak = 0
        while time.monotonic() < stop_at:
            async with manager.lease(keys[index], timeout=0):
                peak = max(peak, threading.active_count())
            done += 1
        cycles[index], peaks[index] = done, peak

    counter = RequestCounter()
    watch = _Stopwatch()
    with counter.attached(env.client):
        async with anyio.create_task_group() as workers:
            for index in range(len(keys)):
                await workers.start(worker, index)
            watch.start()
            stop_at = time.monotonic() + seconds
            go.set()
        watch.stop()
    return _Round(
        sum(cycles), watch.cpu, watch.wall, counter.total(), max(peaks) - threads_before + 1
    )


def _peer_round(
    client: Any, resource: Any, keys: list[str], seconds: float, threads_before: int
) -> _Round:
    """One thread per key, all started before the clock runs, looping acquire/release.

    Blocks the calling (event loop) thread on purpose: nothing else runs meanwhile, and the
    peer then uses no thread beyond its own and the caller's.
    """
    ready = threading.Barrier(len(keys) + 1, timeout=HELD_TIMEOUT)
    go = threading.Event()
    cycles = [0] * len(keys)
    peaks = [0] * len(keys)
    errors: list[BaseException] = []
    stop_at = [0.0]  # 0 until the start: workers let go early just leave

    def worker(index: int) -> None:
        try:
            ready.wait()
            go.wait()
            done = peak = 0
            while time.monotonic() < stop_at[0]:
                lock = client.acquire_lock(keys[index])
                peak = max(peak, threading.active_count())
                client.release_lock(lock, best_effort=False)
                done += 1
            cycles[index], peaks[index] = done, peak
        except BaseException as error:  # noqa: BLE001 - re-raised by the caller
            errors.append(error)

    threads = [
        threading.Thread(target=worker, args=(index,), name=f"peer-worker-{index}", daemon=True)
        for index in range(len(keys))
    ]
    counter = _LockedCounter()
    watch = _Stopwatch()
    try:
        with counter.attached(resource.meta.client):
            for thread in threads:
                thread.start()
            ready.wait()
            watch.start()
            stop_at[0] = time.monotonic() + seconds
            go.set()
            for thread in threads:
                thread.join()
            watch.stop()
    finally:
        ready.abort()
        go.set()
        for thread in threads:
            if thread.ident is not None:
                thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} peer workers failed") from errors[0]
    return _Round(
        sum(cycles), watch.cpu, watch.wall, counter.total(), max(peaks) - threads_before + 1
    )


def _paired(ours: list[float], theirs: list[float]) -> tuple[float, float]:
    """The peer's median, and ours as that times the median per-round ratio."""
    base = statistics.median(theirs)
    return base * median_ratio(list(zip(ours, theirs, strict=True))), base


async def _close_peer(client: Any, executor: ThreadPoolExecutor) -> None:
    """Stop a peer client: `close()` joins its threads, which takes up to a heartbeat period."""
    try:
        await anyio.to_thread.run_sync(client.close)
    finally:
        executor.shutdown()


async def _throughput(
    env: Env, closers: TaskGroup, *, quick: bool, say: Callable[[str], object]
) -> list[Row]:
    rounds, seconds, warm = (2, 1.0, 0.5) if quick else (5, 3.0, 1.0)
    keys = [f"peer:throughput:{index}" for index in range(WORKERS)]
    threads_before = threading.active_count()
    manager = env.manager(default_ttl=TTL)
    resource = peer_resource(env.endpoint_url, pool=WORKERS + 10)
    executor = ThreadPoolExecutor(max_workers=1)
    client = peer_lock_client(resource, PEER_TABLE, ttl=TTL, executor=executor)

    async def aiolease_side(seconds: float) -> _Round:
        return await _aiolease_round(env, manager, keys, seconds)

    async def peer_side(seconds: float) -> _Round:
        return _peer_round(client, resource, keys, seconds, threads_before)

    sides: dict[str, Callable[[float], Awaitable[_Round]]] = {
        AIOLEASE: aiolease_side,
        PEER: peer_side,
    }
    results: dict[str, list[_Round]] = {AIOLEASE: [], PEER: []}
    try:
        for side in sides.values():  # connections, and the emulator's paths for both tables
            await side(warm)
        for r in range(rounds):
            for name in (AIOLEASE, PEER) if r % 2 == 0 else (PEER, AIOLEASE):
                results[name].append(await sides[name](seconds))
            ours, theirs = results[AIOLEASE][-1], results[PEER][-1]
            say(
                f"  peer throughput round {r + 1}/{rounds}: "
                f"{ours.rate:,.0f} vs {theirs.rate:,.0f} cycles/s"
            )
    finally:
        closers.start_soon(_close_peer, client, executor)  # meanwhile the takeover runs
    ours_rounds, theirs_rounds = results[AIOLEASE], results[PEER]
    rate, base_rate = _paired([x.rate for x in ours_rounds], [x.rate for x in theirs_rounds])
    cpu, base_cpu = _paired(
        [x.cpu_per_cycle for x in ours_rounds], [x.cpu_per_cycle for x in theirs_rounds]
    )
    note = f"median of {rounds} alternating rounds of {seconds:g} s; the emulator shares the CPU"
    return [
        Row(
            SECTION,
            f"acquire+release cycles/s, {WORKERS} keys, {WORKERS} workers",
            rate,
            "cycles/s",
            base_rate,
            PEER,
            note=note,
        ),
        Row(
            SECTION,
            "client CPU per acquire+release cycle",
            cpu * 1000,
            "ms",
            base_cpu * 1000,
            PEER,
            note=f"process_time (the emulator is another process); lease ttl {TTL:g} s",
        ),
        Row(
            SECTION,
            "threads at peak",
            statistics.median(x.threads for x in ours_rounds),
            "threads",
            statistics.median(x.threads for x in theirs_rounds),
            PEER,
            note="tasks on one loop vs a thread per worker + 2 heartbeat threads + caller",
        ),
        Row(
            SECTION,
            "requests per acquire+release cycle",
            statistics.median(x.requests_per_cycle for x in ours_rounds),
            "requests",
            statistics.median(x.requests_per_cycle for x in theirs_rounds),
            PEER,
            note="peer: GetItem + PutItem + DeleteItem, plus heartbeats",
        ),
    ]


# -- takeover -----------------------------------------------------------------------------


class _Contender(Protocol):
    """One side's way to wait for a key, let it go, and count its requests."""

    async def acquire(self, key: str) -> float:
        """Wait for `key`; return the monotonic time of the grant."""

    async def release(self, key: str) -> None: ...

    def counting(self) -> contextlib.AbstractContextManager[RequestCounter]: ...


class _AioleaseContender:
    """aiolease's contender: one manager with the takeover settings, on the shared client."""

    def __init__(self, env: Env) -> None:
        self.client = env.client
        self.manager = env.manager(
            default_ttl=TAKEOVER_TTL, poll_interval=POLL, max_clock_skew=SKEW
        )
        self.leases: dict[str, Lease] = {}

    async def acquire(self, key: str) -> float:
        self.leases[key] = await self.manager.acquire(key, timeout=ACQUIRE_TIMEOUT)
        return time.monotonic()

    async def release(self, key: str) -> None:
        await self.manager.release(self.leases.pop(key))

    def counting(self) -> contextlib.AbstractContextManager[RequestCounter]:
        return RequestCounter().attached(self.client)


class _PeerContender:
    """The peer's contender: its own lock client, driven from a worker thread per call."""

    def __init__(self, env: Env, executor: ThreadPoolExecutor) -> None:
        self.resource = peer_resource(env.endpoint_url)
        self.client = peer_lock_client(
            self.resource, PEER_TABLE, ttl=TAKEOVER_TTL, executor=executor
        )
        self.locks: dict[str, Any] = {}

    async def acquire(self, key: str) -> float:
        def blocking() -> float:
            self.locks[key] = self.client.acquire_lock(
                key,
                retry_period=timedelta(seconds=POLL),
                retry_timeout=timedelta(seconds=ACQUIRE_TIMEOUT),
            )
            return time.monotonic()

        return await anyio.to_thread.run_sync(blocking)

    async def release(self, key: str) -> None:
        release = partial(self.client.release_lock, self.locks.pop(key), best_effort=False)
        await anyio.to_thread.run_sync(release)

    def counting(self) -> contextlib.AbstractContextManager[RequestCounter]:
        return _LockedCounter().attached(self.resource.meta.client)


@contextlib.asynccontextmanager
async def _holder(
    env: Env, side: str, table: str, keys: list[str]
) -> AsyncIterator[Callable[[], Awaitable[float]]]:
    """A child process holding `keys`; yields a function that SIGKILLs it (its time)."""
    command = [
        sys.executable,
        "-m",
        "benchmarks._peer_holder",
        side,
        env.endpoint_url,
        table,
        str(TAKEOVER_TTL),
        *keys,
    ]
    process = await anyio.open_process(
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None
    )
    try:
        if process.stdout is None:
            raise AssertionError("the holder's stdout is not a pipe")
        with anyio.fail_after(HELD_TIMEOUT):
            line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 1024)
        if line.strip() != b"held":
            raise RuntimeError(f"the {side} holder said {line!r}, not 'held'")

        async def kill() -> float:
            killed_at = time.monotonic()
            process.kill()
            await process.wait()
            return killed_at

        yield kill
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await process.aclose()


@dataclass(frozen=True)
class _Takeover:
    """What one side did in one takeover repetition (seconds, and requests)."""

    waiting: float  # kill -> grant, for a contender waiting before the kill
    newcomer: float  # first attempt -> grant, once the lease is past expiry + skew
    newcomer_requests: int


async def _takeover(
    env: Env, side: str, contender: _Contender, rep: int, settle: float
) -> _Takeover:
    table = env.table if side == AIOLEASE else PEER_TABLE
    waiting_key, newcomer_key = (f"peer:takeover:{rep}:{role}" for role in ("waiting", "new"))
    granted: list[float] = []

    async def wait() -> None:
        granted.append(await contender.acquire(waiting_key))

    async with (
        _holder(env, side, table, [waiting_key, newcomer_key]) as kill,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(wait)
        await anyio.sleep(settle)
        killed_at = await kill()
    await contender.release(waiting_key)
    await anyio.sleep(max(0.0, killed_at + NEWCOMER_AFTER - time.monotonic()))
    with contender.counting() as counter:
        first = time.monotonic()
        newcomer_granted = await contender.acquire(newcomer_key)
    await contender.release(newcomer_key)
    return _Takeover(granted[0] - killed_at, newcomer_granted - first, counter.total())


async def _takeovers(
    env: Env, closers: TaskGroup, *, quick: bool, say: Callable[[str], object]
) -> list[Row]:
    reps = 1 if quick else 3
    aiolease = _AioleaseContender(env)
    executor = ThreadPoolExecutor(max_workers=1)
    peer = _PeerContender(env, executor)
    contenders: dict[str, _Contender] = {AIOLEASE: aiolease, PEER: peer}
    results: dict[str, list[_Takeover]] = {AIOLEASE: [], PEER: []}
    try:
        for rep in range(reps):
            # The kill lands at the same point of the holder's heartbeat cycle on both
            # sides, spread over the cycle from one repetition to the next.
            settle = SETTLE + HEARTBEAT * (rep + 0.5) / reps
            for side in (AIOLEASE, PEER) if rep % 2 == 0 else (PEER, AIOLEASE):
                taken = await _takeover(env, side, contenders[side], rep, settle)
                results[side].append(taken)
            ours, theirs = results[AIOLEASE][-1], results[PEER][-1]
            say(
                f"  peer takeover {rep + 1}/{reps}: waiting {ours.waiting:.2f} vs "
                f"{theirs.waiting:.2f} s, newcomer {ours.newcomer:.3f} vs {theirs.newcomer:.2f} s"
            )
    finally:
        closers.start_soon(_close_peer, peer.client, executor)

    def median(side: str, figure: Callable[[_Takeover], float]) -> float:
        return statistics.median(figure(x) for x in results[side])

    settings = (
        f"ttl {TAKEOVER_TTL:g} s, heartbeat {HEARTBEAT:g} s, poll {POLL:g} s, "
        f"skew {SKEW:g} s; median of {reps}"
    )
    return [
        Row(
            SECTION,
            "takeover, contender waiting when the holder is killed: kill -> grant",
            median(AIOLEASE, lambda x: x.waiting),
            "s",
            median(PEER, lambda x: x.waiting),
            PEER,
            note=settings,
        ),
        Row(
            SECTION,
            "takeover, contender waiting: bound",
            TAKEOVER_TTL + min(SKEW, POLL),
            "s",
            TAKEOVER_TTL + 2 * POLL,
            PEER,
            note="plus request time; aiolease ttl + min(skew, poll), peer ttl + 2 x retry",
        ),
        Row(
            SECTION,
            "takeover, newcomer after expiry + skew: first attempt -> grant",
            median(AIOLEASE, lambda x: x.newcomer),
            "s",
            median(PEER, lambda x: x.newcomer),
            PEER,
            note=f"newcomer starts {NEWCOMER_AFTER:g} s after the kill",
        ),
        Row(
            SECTION,
            "takeover, newcomer: bound",
            None,
            "s",
            TAKEOVER_TTL + POLL,
            PEER,
            note="aiolease: one request; peer: ttl + retry period after first sight",
        ),
        Row(
            SECTION,
            "takeover, newcomer: requests until grant",
            median(AIOLEASE, lambda x: x.newcomer_requests),
            "requests",
            median(PEER, lambda x: x.newcomer_requests),
            PEER,
            note="peer: a GetItem per retry, then PutItem",
        ),
    ]


@contextlib.contextmanager
def _quiet_peer() -> Iterator[None]:
    """Mute the peer's warnings (it logs each takeover and each close as one)."""
    logger = logging.getLogger("python_dynamodb_lock")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def run(env: Env, *, quick: bool = False, say: Callable[[str], object] = print) -> list[Row]:
    """Measure aiolease and python-dynamodb-lock side by side; return the peer rows."""
    with _quiet_peer():
        create_peer_table(env.endpoint_url, PEER_TABLE)
        async with anyio.create_task_group() as closers:
            rows = await _throughput(env, closers, quick=quick, say=say)
            rows += await _takeovers(env, closers, quick=quick, say=say)
    return rows
