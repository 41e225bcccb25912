"""Orchestration: run the randomized workload, the negative controls, and the command line.

:func:`run_workload` starts worker tasks in this process and worker processes, injects
faults while they run (client faults and clock skew inside the bound in every worker;
blocked loops, SIGSTOP/SIGCONT and SIGKILL of a holder from here, one at a time) and
returns the logs for :func:`.checker.check`. The negative controls are deterministic
schedules that must make the checker report violations: fencing switched off at the
resource, a contender's clock skewed beyond the bound, and a lease whose writes skip
their condition. Each has a twin with the fault removed that must pass.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
from emulators import create_lease_table, dynamodb_local_server, make_client

from aiolease import LeaseEvent, LeaseHeldError, LeaseLostError, LeaseManager

from .checker import Bounds, check, figures
from .logs import EventLog, Logs, load
from .resource import create
from .worker import Worker, WorkerConfig, config_for_process

__all__ = [
    "LONG",
    "QUICK",
    "RunConfig",
    "control_broken_lease",
    "control_skew",
    "control_stale_write",
    "main",
    "run_workload",
]

TESTS_DIR = Path(__file__).resolve().parent.parent
CONTROL_TTL = 1.0
CONTROL_SKEW = 0.2
CONTROL_POLL = 0.05


@dataclass(frozen=True)
class RunConfig:
    """The shape of a run. ``chaos`` is a fixed list of actions, or None for random ones."""

    duration: float
    chaos: tuple[str, ...] | None
    tasks: int = 4
    processes: int = 3
    keys: int = 3
    ttl: float = 1.5
    max_clock_skew: float = 0.2
    poll_interval: float = 0.05
    seed: int = 20240601
    fault_scale: float = 1.0


#: CI: one of each disturbance, about 30 s of work.
QUICK = RunConfig(duration=30.0, chaos=("block_task", "stop", "kill", "block_proc"))
#: The figures in docs/reliability.md: random disturbances for five minutes.
LONG = RunConfig(duration=300.0, chaos=None)


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]

    @property
    def loop(self) -> str:
        return f"pid:{self.popen.pid}"


class _Run:
    """The state of one :func:`run_workload` call."""

    def __init__(
        self, endpoint_url: str, client: Any, table: str, directory: Path, config: RunConfig
    ) -> None:
        self.endpoint_url = endpoint_url
        self.client = client
        self.table = table
        self.directory = directory
        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311
        prefix = f"safety:{uuid.uuid4().hex[:8]}"
        self.keys = [f"{prefix}:{index}" for index in range(config.keys)]
        self.resource = directory / "resource.sqlite3"
        self.until = time.monotonic() + config.duration
        self.log = EventLog(directory / "orchestrator.jsonl")
        self.bounds = Bounds(config.ttl, config.max_clock_skew, config.poll_interval)
        self.block_seconds = config.ttl * 1.5
        self.processes: dict[str, _Process] = {}
        self.tasks: list[Worker] = []
        self.serial = 0
        self.watcher = LeaseManager(client, table, owner="orchestrator")

    def worker_config(self, name: str, loop: str = "main") -> WorkerConfig:
        self.serial += 1
        skew = self.config.max_clock_skew
        return WorkerConfig(
            name=name,
            endpoint_url=self.endpoint_url,
            table=self.table,
            keys=self.keys,
            log_dir=str(self.directory),
            resource=str(self.resource),
            until=self.until,
            seed=self.config.seed + self.serial,
            ttl=self.config.ttl,
            max_clock_skew=skew,
            poll_interval=self.config.poll_interval,
            # Any two clocks differ by less than the bound.
            clock_offset=self.rng.uniform(-0.45 * skew, 0.45 * skew),
            fault_scale=self.config.fault_scale,
            block_seconds=self.block_seconds,
            loop=loop,
            acquire_timeout=4 * self.config.ttl,
        )

    def spawn(self, name: str) -> None:
        config = self.worker_config(name)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), *sys.path])}
        with (self.directory / f"{name}.out").open("wb") as output:
            popen = subprocess.Popen(
                [sys.executable, "-m", "safety.worker", config_for_process(config)],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = _Process(name, popen)
        self.log.emit("worker", name=name)

    def live(self) -> list[_Process]:
        return [p for p in self.processes.values() if p.popen.poll() is None]

    def has_granted(self, name: str) -> bool:
        path = self.directory / f"{name}.jsonl"
        return path.exists() and '"ev": "grant"' in path.read_text(encoding="utf-8")

    # -- disturbances, one at a time ----------------------------------------------------

    async def block_task(self) -> None:
        worker = self.rng.choice(self.tasks)
        worker.block_next = self.block_seconds
        with anyio.move_on_after(4 * self.config.ttl + self.block_seconds):
            while worker.block_next > 0:  # noqa: ASYNC110 - set from another task's body
                await anyio.sleep(0.05)
        await anyio.sleep(self.config.ttl)

    async def block_process(self) -> None:
        process = self.rng.choice(self.live())
        os.kill(process.popen.pid, signal.SIGUSR1)
        await anyio.sleep(4 * self.config.ttl + self.block_seconds)

    async def stop(self) -> None:
        process = self.rng.choice(self.live())
        seconds = self.config.ttl * self.rng.uniform(1.2, 2.0)
        resumed = threading.Event()
        ended: list[float] = []

        def resume() -> None:
            # From a thread: this loop may itself wait on a resource lock the stopped
            # process holds.
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.popen.pid, signal.SIGCONT)
            ended.append(time.monotonic())
            resumed.set()

        timer = threading.Timer(seconds, resume)
        start = time.monotonic()
        os.kill(process.popen.pid, signal.SIGSTOP)
        timer.start()
        try:
            await anyio.to_thread.run_sync(resumed.wait)
        finally:
            timer.cancel()
            if not resumed.is_set():
                resume()
        self.log.emit("pause", loop=process.loop, kind="stop", start=start, end=ended[0])
        await anyio.sleep(self.config.ttl)

    async def kill(self, task_group: anyio.abc.TaskGroup) -> None:
        victim: tuple[_Process, str, int] | None = None
        with anyio.move_on_after(8 * self.config.ttl):
            while victim is None:
                for key in self.keys:
                    info = await self.watcher.get(key)
                    process = self.processes.get(info.owner) if info is not None else None
                    if info is not None and process is not None and process.popen.poll() is None:
                        victim = (process, key, info.fence)
                        break
                else:
                    await anyio.sleep(0.02)
        if victim is None:
            return
        process, key, fence = victim
        process.popen.kill()
        at = time.monotonic()
        await anyio.to_thread.run_sync(process.popen.wait)
        self.log.emit("kill", worker=process.name, loop=process.loop, key=key, fence=fence, at=at)
        # Someone must want the key, so that the failover is measured.
        probe = Worker(
            replace(self.worker_config(f"probe{self.serial}"), fault_scale=0), self.client
        )
        self.tasks_to_close.append(probe)
        task_group.start_soon(probe.one_grant, key)
        if self.until - time.monotonic() > 15:
            self.spawn(f"{process.name}r")
        await anyio.sleep(self.bounds.failover + 1)

    async def chaos(self, task_group: anyio.abc.TaskGroup) -> None:
        with anyio.move_on_after(30):
            while not all(self.has_granted(name) for name in self.processes):  # noqa: ASYNC110
                await anyio.sleep(0.1)
        actions: dict[str, Callable[[], Awaitable[None]]] = {
            "block_task": self.block_task,
            "block_proc": self.block_process,
            "stop": self.stop,
            "kill": lambda: self.kill(task_group),
        }
        schedule: Iterator[str] = (
            iter(self.config.chaos)
            if self.config.chaos is not None
            else iter(lambda: self.rng.choice(sorted(actions)), None)
        )
        for action in schedule:
            if self.until - time.monotonic() < 4 * self.config.ttl + self.block_seconds:
                break
            await actions[action]()
            await anyio.sleep(self.rng.uniform(0.2, 1.0))

    tasks_to_close: list[Worker]

    async def run(self) -> None:
        self.tasks_to_close = []
        try:
            for index in range(self.config.processes):
                self.spawn(f"p{index}")
            for index in range(self.config.tasks):
                worker = Worker(self.worker_config(f"t{index}"), self.client)
                self.tasks.append(worker)
                self.tasks_to_close.append(worker)
                self.log.emit("worker", name=worker.config.name)
            async with anyio.create_task_group() as task_group:
                for worker in self.tasks:
                    task_group.start_soon(worker.run)
                task_group.start_soon(self.chaos, task_group)
            with anyio.move_on_after(8 * self.config.ttl + 10):
                while self.live():  # noqa: ASYNC110 - child processes
                    await anyio.sleep(0.1)
            failed = [p.name for p in self.processes.values() if p.popen.poll() not in (0, -9)]
            self.log.emit("meta", values={"failed_processes": failed})
        finally:
            self.stop_processes()
            for worker in self.tasks_to_close:
                worker.close()
            self.log.close()

    def stop_processes(self) -> None:
        for process in self.processes.values():
            if process.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.popen.pid, signal.SIGCONT)
                process.popen.kill()
            process.popen.wait()


async def run_workload(
    endpoint_url: str, client: Any, table: str, directory: Path, config: RunConfig
) -> tuple[Logs, Bounds]:
    """Run the randomized workload against DynamoDB Local; return its logs and bounds."""
    run = _Run(endpoint_url, client, table, directory, config)
    create(run.resource)
    run.log.emit(
        "meta",
        values={
            "duration_s": config.duration,
            "tasks": config.tasks,
            "processes": config.processes,
            "seed": config.seed,
            "chaos": list(config.chaos) if config.chaos else "random",
        },
    )
    await run.run()
    return load(directory, run.resource), run.bounds


# -- negative controls ------------------------------------------------------------------


class ConditionlessClient:
    """A broken store: passes every ``UpdateItem`` on without its ``ConditionExpression``."""

    def __init__(self, client: Any) -> None:
        self.wrapped = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    async def update_item(self, **params: Any) -> Any:
        params.pop("ConditionExpression", None)
        used = set(re.findall(r"[:#]\w+", params.get("UpdateExpression", "")))
        for field in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
            kept = {k: v for k, v in params.get(field, {}).items() if k in used}
            if kept:
                params[field] = kept
            else:
                params.pop(field, None)
        return await self.wrapped.update_item(**params)


def _control_config(
    name: str, key: str, directory: Path, endpoint_url: str, table: str
) -> WorkerConfig:
    return WorkerConfig(
        name=name,
        endpoint_url=endpoint_url,
        table=table,
        keys=[key],
        log_dir=str(directory),
        resource=str(directory / "resource.sqlite3"),
        until=0.0,
        seed=0,
        ttl=CONTROL_TTL,
        max_clock_skew=CONTROL_SKEW,
        poll_interval=CONTROL_POLL,
        fault_scale=0.0,
        acquire_timeout=5.0,
    )


@contextlib.contextmanager
def _workers(*workers: Worker) -> Iterator[None]:
    try:
        yield
    finally:
        for worker in workers:
            worker.close()


def _bounds() -> Bounds:
    return Bounds(CONTROL_TTL, CONTROL_SKEW, CONTROL_POLL)


async def _hold_and_write(worker: Worker, key: str, seconds: float) -> None:
    """Hold ``key`` for ``seconds``, writing every 20 ms (each after ``ensure_held``)."""
    stopped: list[float] = []
    gid = None
    try:
        async with worker.manager.lease(key, timeout=5) as lease:
            gid = worker.log_grant(lease, 0)
            try:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    worker.write(lease, gid)
                    await anyio.sleep(0.02)
            except (anyio.get_cancelled_exc_class(), LeaseLostError):
                stopped[:] = [time.monotonic(), lease._valid_until]
                raise
            outcome = await worker.release(lease, gid)
    except LeaseLostError as error:
        outcome = f"lost:{error.reason}"
    if gid is not None:
        worker.log_end(gid, outcome, stopped)


async def _take_over(worker: Worker, key: str, refreshed: anyio.Event) -> None:
    """Right after the holder's first refresh, try once to take ``key``; if granted, write
    and release. The holder's next heartbeat is a full interval away, so it keeps writing
    meanwhile unless the take-over was refused."""
    await refreshed.wait()
    try:
        async with worker.manager.lease(key, timeout=0) as lease:
            gid = worker.log_grant(lease, 0)
            await anyio.sleep(0.2)
            worker.write(lease, gid)
            worker.log_end(gid, await worker.release(lease, gid), [])
    except LeaseHeldError:
        return


async def _contended(
    endpoint_url: str,
    client: Any,
    table: str,
    directory: Path,
    contender: Callable[[WorkerConfig], Worker],
) -> list[str]:
    key = f"control:{uuid.uuid4().hex[:8]}"
    create(directory / "resource.sqlite3")
    refreshed = anyio.Event()

    def on_event(event: LeaseEvent) -> None:
        if event.kind == "refreshed":
            refreshed.set()

    holder = Worker(
        _control_config("holder", key, directory, endpoint_url, table), client, hooks=[on_event]
    )
    other = contender(_control_config("contender", key, directory, endpoint_url, table))
    with _workers(holder, other):
        holder.log.emit("worker", name="holder")
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(_hold_and_write, holder, key, 2.0)
            task_group.start_soon(_take_over, other, key, refreshed)
    logs = load(directory, directory / "resource.sqlite3")
    return check(logs, _bounds())


async def control_skew(
    endpoint_url: str, client: Any, table: str, directory: Path, *, offset: float
) -> list[str]:
    """A contender whose wall clock runs ``offset`` s ahead tries to take a held key."""
    return await _contended(
        endpoint_url,
        client,
        table,
        directory,
        lambda config: Worker(replace(config, clock_offset=offset), client),
    )


async def control_broken_lease(
    endpoint_url: str, client: Any, table: str, directory: Path, *, broken: bool
) -> list[str]:
    """A contender whose client drops every write's condition (``broken``) takes a held key."""
    return await _contended(
        endpoint_url,
        client,
        table,
        directory,
        lambda config: Worker(config, ConditionlessClient(client) if broken else client),
    )


async def control_stale_write(
    endpoint_url: str, client: Any, table: str, directory: Path, *, fencing: bool
) -> list[str]:
    """A holder passes ``ensure_held``, its loop blocks past its lease, then it writes.

    The holder runs on its own event loop in a thread, which it blocks with
    ``time.sleep``; meanwhile a second worker on this loop takes the key, writes and
    releases. The holder's late write reaches a resource with ``fencing`` on or off.
    """
    key = f"control:{uuid.uuid4().hex[:8]}"
    resource = directory / "resource.sqlite3"
    create(resource)
    granted = threading.Event()

    async def stale_holder() -> None:
        config = replace(
            _control_config("stale", key, directory, endpoint_url, table), loop="thread"
        )
        async with make_client(endpoint_url) as own_client:
            worker = Worker(config, own_client)
            worker.resource.fencing = fencing
            worker.log.emit("worker", name="stale")
            with _workers(worker), contextlib.suppress(LeaseLostError):
                async with worker.manager.lease(key, timeout=5) as lease:
                    gid = worker.log_grant(lease, 0)
                    worker.write(lease, gid)
                    granted.set()
                    lease.ensure_held()
                    t_check, deadline = time.monotonic(), lease._valid_until
                    start = time.monotonic()
                    time.sleep(2.5 * CONTROL_TTL)  # noqa: ASYNC251 - blocked between check and write
                    worker.resource.write(
                        key,
                        lease.fence,
                        worker="stale",
                        grant=gid,
                        t_check=t_check,
                        deadline=deadline,
                    )
                    worker.log.emit(
                        "pause", loop="thread", kind="block", start=start, end=time.monotonic()
                    )

    async def next_holder() -> None:
        await anyio.to_thread.run_sync(granted.wait, abandon_on_cancel=True)
        worker = Worker(_control_config("next", key, directory, endpoint_url, table), client)
        worker.log.emit("worker", name="next")
        with _workers(worker):
            await worker.one_grant(key)

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(anyio.to_thread.run_sync, lambda: asyncio.run(stale_holder()))
        task_group.start_soon(next_holder)
    return check(load(directory, resource), _bounds())


# -- command line -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _dynamodb_local() -> AsyncIterator[tuple[str, Any, str]]:
    async with dynamodb_local_server() as emulator, make_client(emulator.endpoint_url) as client:
        await create_lease_table(client, "leases")
        yield emulator.endpoint_url, client, "leases"


async def _main(config: RunConfig, directory: Path) -> dict[str, Any]:
    async with _dynamodb_local() as (endpoint_url, client, table):
        logs, bounds = await run_workload(endpoint_url, client, table, directory, config)
    violations = check(logs, bounds)
    result = figures(logs, bounds, violations)
    result["violation_list"] = violations
    return result


def main(argv: list[str] | None = None) -> int:
    """``python tests/safety/run.py [--long] [--duration S] [--json FILE] [--dir DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="the long run (figures)")
    parser.add_argument("--duration", type=float, help="override the run's duration (s)")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--dir", type=Path, help="keep the logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    config = LONG if args.long else QUICK
    if args.duration is not None:
        config = replace(config, duration=args.duration)
    if args.seed is not None:
        config = replace(config, seed=args.seed)
    with contextlib.ExitStack() as stack:
        if args.dir is None:
            import tempfile  # noqa: PLC0415

            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            directory = args.dir
            directory.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(_main(config, directory))
    text = json.dumps(result, indent=2)
    print(text)  # noqa: T201
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 1 if result["violation_list"] else 0
