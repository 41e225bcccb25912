"""Scale: thousands of leases held by one manager in one process.

No emulator on this 2-core machine answers a thousand refreshes a second next to the
client, so these figures use `StubDynamoDB`, a stand-in at the HTTP layer (signing,
serialisation and parsing still run) that answers after a pause standing in for the
network. The ttl grows with the number of leases so that the heartbeat rate stays
near 800 refreshes a second, well inside one core (a heartbeat costs 0.5 to 0.9 ms of
client CPU here). Memory per lease is measured twice: the growth of the resident set at
each scale point, and the Python heap (tracemalloc) held per lease over 2,000 leases.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import anyio

from aiolease import Lease, LeaseManager
from aiolease.testing._emulator import new_client

from ._common import Row, captured_updates, loop_lag, measure, rss_bytes
from ._stub import UNUSED_ENDPOINT, StubDynamoDB

__all__ = ["run"]

SECTION = "scale"
LATENCY = 0.0015  # seconds, about DynamoDB Local's answer time on loopback
RATE = 800  # heartbeats a second the ttl is chosen for
HEAP_SAMPLE = 2_000  # leases held while tracemalloc counts the heap
RSS_FROM = 10_000  # fewer leases fit in memory the process already has


def _ttl(count: int) -> float:
    """A ttl whose heartbeat interval (ttl / 3) gives about `RATE` refreshes a second."""
    return max(6.0, round(3 * count / RATE))


async def _raw_refresh_cpu(client: Any, manager: LeaseManager) -> float:
    """Client CPU of one raw UpdateItem carrying a refresh, through the same stub."""
    lease = await manager.acquire("scale:raw", timeout=0)
    with captured_updates(client) as sent:
        await manager.refresh(lease)
    (request,) = sent
    count = 500
    with measure(count) as sample:
        for _ in range(count):
            await client.update_item(**request)
    await manager.release(lease)
    return sample.cpu_per_op


async def _acquire_all(manager: LeaseManager, keys: list[str], ttl: float) -> list[Lease]:
    leases: list[Lease] = []
    limit = anyio.CapacityLimiter(200)

    async def one(key: str) -> None:
        async with limit:
            leases.append(await manager.acquire(key, ttl=ttl, timeout=0))

    async with anyio.create_task_group() as group:
        for key in keys:
            group.start_soon(one, key)
    return leases


async def _release_all(manager: LeaseManager, leases: list[Lease]) -> None:
    limit = anyio.CapacityLimiter(200)

    async def one(lease: Lease) -> None:
        async with limit:
            await manager.release(lease)

    async with anyio.create_task_group() as group:
        for lease in leases:
            group.start_soon(one, lease)


def _lateness(
    sent: list[tuple[str, str, float]], interval: float, start: float, end: float
) -> tuple[int, int, list[float]]:
    """Refreshes sent in [start, end), how many came late by over 10 %, and all lateness."""
    last: dict[str, float] = {}
    late, total, lateness = 0, 0, []
    for operation, key, at in sent:
        if operation != "UpdateItem":
            continue
        previous = last.get(key)
        last[key] = at
        if previous is None or not start <= at < end:
            continue
        delay = at - (previous + interval)
        lateness.append(delay)
        total += 1
        if delay > 0.1 * interval:
            late += 1
    return total, late, lateness


async def _point(count: int, *, say: Callable[[str], object]) -> list[Row]:
    ttl = _ttl(count)
    interval = ttl / 3
    async with new_client(UNUSED_ENDPOINT, max_pool_connections=200) as client:
        stub = StubDynamoDB(latency=LATENCY, keep=False)
        with stub.attached(client):
            manager = LeaseManager(client, "leases", default_ttl=ttl, max_clock_skew=1)
            raw_cpu = await _raw_refresh_cpu(client, manager)
            async with manager:
                gc.collect()
                before = rss_bytes()
                started = time.perf_counter()
                leases = await _acquire_all(manager, [f"scale:{i}" for i in range(count)], ttl)
                acquired_in = time.perf_counter() - started
                gc.collect()
                per_lease = (rss_bytes() - before) / count
                stub.record = True
                say(f"  scale {count:,}: acquired in {acquired_in:.1f} s, watching {ttl:.0f} s")
                # Watch two heartbeat rounds, after one round that records where each stands.
                await anyio.sleep(interval)
                stop = anyio.Event()
                lags: list[float] = []
                window = 2 * interval
                start = time.monotonic()
                with measure(1) as sample:
                    async with anyio.create_task_group() as group:
                        group.start_soon(lambda: loop_lag(stop, lags, clock=time.monotonic))
                        await anyio.sleep(window)
                        stop.set()
                end = time.monotonic()
                alive = sum(1 for lease in leases if lease.lost is None)
                await _release_all(manager, leases)
    total, late, lateness = _lateness(stub.sent, interval, start, end)
    if alive != count:
        raise AssertionError(f"{count - alive} of {count} leases were lost while watched")
    lags.sort()
    label = f"{count:,} leases (ttl {ttl:.0f} s)"
    return [
        Row(
            SECTION,
            f"{label}: heartbeats late by > 10 % of the interval",
            100 * late / max(total, 1),
            "%",
            note=f"{total:,} heartbeats in {window:.0f} s; stub transport",
        ),
        Row(
            SECTION,
            f"{label}: heartbeat lateness p99",
            1000 * _quantile(lateness, 0.99),
            "ms",
            1000 * interval,
            "heartbeat interval",
        ),
        Row(
            SECTION,
            f"{label}: event-loop lag p99 / max",
            1000 * _quantile(lags, 0.99),
            "ms",
            note=f"max {1000 * lags[-1]:.1f} ms, probe every 10 ms",
        ),
        Row(
            SECTION,
            f"{label}: client CPU per heartbeat",
            1000 * sample.cpu / max(total, 1),
            "ms",
            1000 * raw_cpu,
            "raw refresh",
            note="includes the loop and the stub's pause",
        ),
        Row(
            SECTION,
            f"{label}: resident memory per held lease",
            per_lease / 1024 if count >= RSS_FROM else None,
            "KiB",
            note="resident set growth / leases"
            if count >= RSS_FROM
            else "too few leases to move the resident set; see the heap figure",
        ),
    ]


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


async def _heap_per_lease() -> float:
    """Bytes of Python heap each held lease keeps, heartbeats scheduled, none in flight."""
    async with new_client(UNUSED_ENDPOINT, max_pool_connections=200) as client:
        stub = StubDynamoDB(keep=False)
        with stub.attached(client):
            manager = LeaseManager(client, "leases", default_ttl=3600)
            async with manager:
                warm = await _acquire_all(manager, ["scale:heap:warm"], 3600)
                gc.collect()
                tracemalloc.start()
                try:
                    before = tracemalloc.get_traced_memory()[0]
                    keys = [f"scale:heap:{i}" for i in range(HEAP_SAMPLE)]
                    leases = await _acquire_all(manager, keys, 3600)
                    gc.collect()
                    held = tracemalloc.get_traced_memory()[0] - before
                finally:
                    tracemalloc.stop()
                await _release_all(manager, [*warm, *leases])
    return held / HEAP_SAMPLE


async def run(env: Any, *, quick: bool = False, say: Callable[[str], object] = print) -> list[Row]:
    """Measure and return the scale rows (`env` is unused: the stub stands in)."""
    del env
    counts = (1_000, 5_000) if quick else (1_000, 10_000, 50_000)
    rows: list[Row] = [
        Row(
            SECTION,
            "Python heap per held lease",
            await _heap_per_lease() / 1024,
            "KiB",
            note=f"tracemalloc over {HEAP_SAMPLE:,} leases (keys included), heartbeats pending",
        )
    ]
    for count in counts:
        rows.extend(await _point(count, say=say))
    return rows
