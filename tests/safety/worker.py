"""One worker: take a random shared key, write to the fenced resource, release; repeat.

Run as a task (:class:`Worker`) or as a process: ``python -m safety.worker CONFIG`` with
``tests/`` on ``PYTHONPATH`` and a JSON :class:`WorkerConfig` as the one argument. A
process blocks its event loop in its next grant's body on SIGUSR1.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
from emulators import make_client

from aiolease import (
    Lease,
    LeaseHeldError,
    LeaseLostError,
    LeaseManager,
    LeaseStoreError,
    LeaseTimeoutError,
)
from aiolease.testing import (
    Fault,
    FaultyClient,
    SkewedClock,
    drop_response,
    latency,
    server_error,
    throttle,
)

from .logs import EventLog, grant_id
from .resource import FencedResource

__all__ = ["FAULTS", "Worker", "WorkerConfig", "main", "plan_faults"]

#: The faults planned on every worker's client: name, operation, fault, probability.
FAULTS: tuple[tuple[str, str, Fault, float], ...] = (
    ("drop_response", "update_item", drop_response(), 0.02),
    ("throttle", "update_item", throttle(), 0.02),
    ("throttling_exception", "update_item", throttle("ThrottlingException"), 0.01),
    ("server_error_500", "update_item", server_error(500), 0.01),
    ("server_error_503", "update_item", server_error(503), 0.01),
    ("latency_50ms", "*", latency(0.05), 0.04),
    ("latency_200ms_after", "*", latency(0.2, after=True), 0.02),
)


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs; JSON-serialisable to start a process."""

    name: str
    endpoint_url: str
    table: str
    keys: list[str]
    log_dir: str
    resource: str
    until: float  # time.monotonic() at which to stop taking new grants
    seed: int
    ttl: float
    max_clock_skew: float
    poll_interval: float
    clock_offset: float = 0.0
    fault_scale: float = 1.0
    block_seconds: float = 0.0
    loop: str = "main"
    acquire_timeout: float = 10.0


def plan_faults(client: FaultyClient, seed: int, scale: float) -> dict[str, Any]:
    """Plan :data:`FAULTS` on ``client`` (probabilities times ``scale``); return the rules."""
    rules: dict[str, Any] = {}
    if scale <= 0:
        return rules
    for index, (name, operation, fault, probability) in enumerate(FAULTS):
        rules[name] = client.plan(
            operation, fault, probability=min(1.0, probability * scale), seed=seed * 100 + index
        )
    return rules


def new_manager(client: Any, config: WorkerConfig, **options: Any) -> LeaseManager:
    """A manager with the run's settings, owned by ``config.name``."""
    settings: dict[str, Any] = {"backoff": 0.1, "release_timeout": 1.0, **options}
    return LeaseManager(
        client,
        config.table,
        owner=config.name,
        default_ttl=config.ttl,
        max_clock_skew=config.max_clock_skew,
        poll_interval=config.poll_interval,
        wall_clock=SkewedClock(config.clock_offset),
        **settings,
    )


class Worker:
    """The acquire / write / release loop of one worker, logging everything it does."""

    def __init__(self, config: WorkerConfig, client: Any, **options: Any) -> None:
        self.config = config
        self.faulty = FaultyClient(client)
        self.rules = plan_faults(self.faulty, config.seed, config.fault_scale)
        self.manager = new_manager(self.faulty, config, **options)
        self.rng = random.Random(config.seed)  # noqa: S311
        self.log = EventLog(Path(config.log_dir) / f"{config.name}.jsonl")
        self.resource = FencedResource(Path(config.resource))
        #: Seconds to block the loop for in the next grant's body (0: don't).
        self.block_next = 0.0

    def close(self) -> None:
        """Close the log and the resource connection."""
        self.log.close()
        self.resource.close()

    async def run(self) -> None:
        """Take grants until ``config.until``."""
        try:
            while time.monotonic() < self.config.until:
                await self.one_grant(self.rng.choice(self.config.keys))
        finally:
            self.report()

    def report(self) -> None:
        """Log the cumulative request and fault counters."""
        self.log.emit(
            "stats",
            worker=self.config.name,
            requests=len(self.faulty.calls),
            faults={name: rule.fired for name, rule in self.rules.items()},
        )

    def log_grant(self, lease: Lease, requests: int) -> str:
        """Log that ``lease`` was just granted; return its grant id."""
        gid = grant_id(self.config.name, lease.key, lease.fence)
        self.log.emit(
            "grant",
            worker=self.config.name,
            loop=self.config.loop,
            key=lease.key,
            fence=lease.fence,
            start=time.monotonic(),
            read=lease.data,
            requests=requests,
        )
        return gid

    def log_end(self, gid: str, outcome: str, stopped: list[float]) -> None:
        """Log how grant ``gid`` ended (``stopped``: when the body stopped, and the deadline)."""
        self.log.emit(
            "end",
            grant=gid,
            end=time.monotonic(),
            outcome=outcome,
            stopped_at=stopped[0] if stopped else None,
            deadline=stopped[1] if stopped else None,
        )

    async def one_grant(self, key: str) -> None:
        """Hold ``key`` once (if it can be had in time): write, then release with data."""
        before = len(self.faulty.calls)
        gid: str | None = None
        stopped: list[float] = []
        try:
            async with self.manager.lease(key, timeout=self.config.acquire_timeout) as lease:
                gid = self.log_grant(lease, len(self.faulty.calls) - before)
                try:
                    await self.body(lease, gid)
                except (anyio.get_cancelled_exc_class(), LeaseLostError):
                    stopped[:] = [time.monotonic(), lease._valid_until]
                    raise
                outcome = await self.release(lease, gid)
        except LeaseLostError as error:
            outcome = f"lost:{error.reason}"
        except (LeaseTimeoutError, LeaseHeldError):
            return
        except LeaseStoreError:
            outcome = "store_error"
        if gid is not None:
            self.log_end(gid, outcome, stopped)
        self.report()

    async def body(self, lease: Lease, gid: str) -> None:
        """A few fenced writes, each right after ``ensure_held``; maybe block the loop."""
        for index in range(self.rng.randint(1, 4)):
            if index == 0 and self.block_next > 0:
                seconds, self.block_next = self.block_next, 0.0
                start = time.monotonic()
                time.sleep(seconds)  # noqa: ASYNC251 - the whole loop stops: no heartbeat either
                self.log.emit(
                    "pause", loop=self.config.loop, kind="block", start=start, end=time.monotonic()
                )
            await anyio.sleep(self.rng.uniform(0.0, 0.03))
            self.write(lease, gid)

    def write(self, lease: Lease, gid: str) -> bool:
        """``ensure_held``, then one write to the resource under the lease's fence."""
        lease.ensure_held()
        t_check = time.monotonic()
        return self.resource.write(
            lease.key,
            lease.fence,
            worker=self.config.name,
            grant=gid,
            t_check=t_check,
            deadline=lease._valid_until,
        )

    async def release(self, lease: Lease, gid: str) -> str:
        """Release, writing a counter one above what this grant read."""
        previous = lease.data if isinstance(lease.data, dict) else {}
        data = {"n": int(previous.get("n", 0)) + 1, "by": self.config.name, "fence": lease.fence}
        self.log.emit("releasing", grant=gid, data=data)
        try:
            released = await self.manager.release(lease, data=data)
        except LeaseStoreError:
            return "release_failed"
        return "released" if released else "not_ours"


async def run_process(config: WorkerConfig) -> None:
    """A worker process: its own loop, client and resource connection."""
    async with make_client(config.endpoint_url) as client:
        worker = Worker(config, client)
        loop = asyncio.get_running_loop()

        def block() -> None:
            worker.block_next = config.block_seconds

        loop.add_signal_handler(signal.SIGUSR1, block)
        try:
            await worker.run()
        finally:
            worker.close()


def config_for_process(config: WorkerConfig) -> str:
    """The command-line argument that starts a process running ``config``."""
    return json.dumps(asdict(config))


def main(argv: list[str]) -> None:
    """Entry point: ``python -m safety.worker '<WorkerConfig as JSON>'``."""
    fields = json.loads(argv[0])
    fields["loop"] = f"pid:{os.getpid()}"
    asyncio.run(run_process(WorkerConfig(**fields)))


if __name__ == "__main__":
    main(sys.argv[1:])
