"""What every benchmark shares: the emulator, clients, measurements and the result rows.

The emulator runs in a child process (AWS DynamoDB Local, Java), so this process's CPU
time (`time.process_time`) is the client's own: aiolease, aiobotocore and the event loop.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from aiolease import LeaseManager
from aiolease.testing import local_dynamodb
from aiolease.testing._emulator import new_client

__all__ = [
    "EMULATORS",
    "ROOT",
    "Env",
    "RequestCounter",
    "Row",
    "Sample",
    "captured_updates",
    "emulator",
    "loop_lag",
    "measure",
    "median_ratio",
    "rss_bytes",
    "table",
    "warm_up",
]

ROOT = Path(__file__).resolve().parent.parent
EMULATORS = Path(os.environ.get("AIOLEASE_EMULATORS_DIR", ROOT / "tests" / "npm"))


@dataclass(frozen=True)
class Row:
    """One line of the results table: a figure for aiolease and what it is measured against.

    `ratio` is aiolease / baseline where both are given (lower is better for costs).
    """

    section: str
    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "figure": self.figure,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "ratio": self.ratio,
            "note": self.note,
        }


@dataclass(frozen=True)
class Env:
    """A running emulator: its address, an open client and a lease table."""

    endpoint_url: str
    client: Any
    table: str

    def manager(self, **options: Any) -> LeaseManager:
        return LeaseManager(self.client, self.table, **options)

    def new_client(self, **config: Any) -> contextlib.AbstractAsyncContextManager[Any]:
        return new_client(self.endpoint_url, **config)


@contextlib.asynccontextmanager
async def emulator(table: str = "leases") -> AsyncIterator[Env]:
    """AWS DynamoDB Local in a child process, with a client and a lease table."""
    async with local_dynamodb(
        table=table,
        backend="dynamodb-local",
        dynamodb_local_dir=EMULATORS / "node_modules",
        max_pool_connections=200,
    ) as env:
        yield Env(env.endpoint_url, env.client, env.table)


@dataclass
class Sample:
    """CPU and wall seconds spent on `count` operations."""

    cpu: float
    wall: float
    count: int

    @property
    def cpu_per_op(self) -> float:
        return self.cpu / self.count

    @property
    def wall_per_op(self) -> float:
        return self.wall / self.count


@contextlib.contextmanager
def measure(count: int) -> Iterator[Sample]:
    """Time a block of `count` operations; the sample is filled in when it exits."""
    sample = Sample(0.0, 0.0, count)
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    yield sample
    sample.cpu = time.process_time() - cpu
    sample.wall = time.perf_counter() - wall


def median_ratio(pairs: list[tuple[float, float]]) -> float:
    """Median of a / b over rounds measured side by side."""
    return statistics.median(a / b for a, b in pairs)


@dataclass(eq=False)
class RequestCounter:
    """Counts the HTTP requests a client sends, by operation (botocore retries included)."""

    counts: Counter[str] = field(default_factory=Counter)

    def __call__(self, request: Any = None, **kwargs: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"") if request is not None else b""
        if isinstance(target, bytes):
            target = target.decode()
        self.counts[target.rsplit(".", 1)[-1]] += 1

    @contextlib.contextmanager
    def attached(self, client: Any) -> Iterator[RequestCounter]:
        client.meta.events.register("before-send.dynamodb", self)
        try:
            yield self
        finally:
            client.meta.events.unregister("before-send.dynamodb", self)

    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        self.counts.clear()


@contextlib.contextmanager
def captured_updates(client: Any) -> Iterator[list[dict[str, Any]]]:
    """Copies of the parameters of every UpdateItem `client` is asked to send in the block."""
    captured: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **kwargs: Any) -> None:
        captured.append(copy.deepcopy(params))

    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", capture)
    try:
        yield captured
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.UpdateItem", capture)


def rss_bytes() -> int:
    """Resident memory of this process now (Linux)."""
    with Path("/proc/self/statm").open() as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def loop_lag(
    stop: anyio.Event, lags: list[float], *, period: float = 0.01, clock: Callable[[], float]
) -> None:
    """Record how late the event loop wakes a task that sleeps `period` at a time."""
    while not stop.is_set():
        due = clock() + period
        await anyio.sleep(period)
        lags.append(max(0.0, clock() - due))


def _format(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in {"requests", "count", "threads", "tasks"} and float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(rows: Sequence[Row]) -> str:
    """The results as one Markdown table."""
    lines = [
        "| section | figure | aiolease | against | baseline | ratio | unit | note |",
        "|---|---|---:|---|---:|---:|---|---|",
    ]
    for row in rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(
            f"| {row.section} | {row.figure} | {_format(row.value, row.unit)} | "
            f"{row.baseline_name or '-'} | {_format(row.baseline, row.unit)} | {ratio} | "
            f"{row.unit} | {row.note} |"
        )
    return "\n".join(lines)


async def warm_up(env: Env) -> None:
    """Let the JVM compile its hot paths before anything is measured."""
    manager = env.manager(default_ttl=60)
    for i in range(300):
        lease = await manager.acquire(f"warm:{i % 20}", timeout=0)
        await manager.refresh(lease)
        await manager.release(lease)
