"""What a run records: event types, a JSON-lines writer, and a loader for the checker.

Every worker appends to its own ``<worker>.jsonl`` file (one flushed line per event, so
a SIGKILL loses nothing already written); the orchestrator writes ``orchestrator.jsonl``;
the fenced resource keeps its own log of writes in SQLite. All times are
:func:`time.monotonic` readings, comparable across processes on one Linux host.

A *loop* names the event loop a worker runs on (``"main"``, ``"pid:1234"``...): blocking
a loop or stopping a process disturbs every grant held on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .resource import Write, read_writes

__all__ = [
    "EventLog",
    "Grant",
    "GrantEnd",
    "Kill",
    "Logs",
    "Pause",
    "Releasing",
    "WorkerStats",
    "grant_id",
    "load",
]


def grant_id(worker: str, key: str, fence: int) -> str:
    """Name one grant: a worker's hold of a key under one fence."""
    return f"{worker}/{key}/{fence}"


@dataclass(frozen=True)
class Grant:
    """A worker got ``key`` with ``fence`` at ``start`` (after ``acquire`` returned)."""

    worker: str
    loop: str
    key: str
    fence: int
    start: float
    read: Any
    requests: int

    @property
    def id(self) -> str:
        """This grant's :func:`grant_id`."""
        return grant_id(self.worker, self.key, self.fence)


@dataclass(frozen=True)
class Releasing:
    """The worker is about to release its grant, writing ``data``."""

    grant: str
    data: Any


@dataclass(frozen=True)
class GrantEnd:
    """How a grant ended, logged once its ``async with`` block exited.

    ``outcome`` is ``"released"`` (``release`` returned True), ``"not_ours"`` (it
    returned False), ``"release_failed"`` (it raised), or ``"lost:<reason>"`` (the block
    raised ``LeaseLostError``). ``stopped_at`` is when the body was stopped (cancelled, or
    ``ensure_held`` raised) and ``deadline`` the lease's local deadline at that moment.
    """

    grant: str
    end: float
    outcome: str
    stopped_at: float | None = None
    deadline: float | None = None


@dataclass(frozen=True)
class Pause:
    """A loop that could not run from ``start`` to ``end`` (``kind`` block or stop)."""

    loop: str
    kind: str
    start: float
    end: float


@dataclass(frozen=True)
class Kill:
    """The process running ``worker`` was SIGKILLed at ``at`` while holding ``key``."""

    worker: str
    loop: str
    key: str
    fence: int
    at: float


@dataclass(frozen=True)
class WorkerStats:
    """A worker's cumulative request and fault counters (its last report wins)."""

    worker: str
    requests: int
    faults: dict[str, int]


@dataclass
class Logs:
    """Everything the checker looks at."""

    workers: list[str] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    releasing: list[Releasing] = field(default_factory=list)
    ends: list[GrantEnd] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    pauses: list[Pause] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    stats: dict[str, WorkerStats] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class EventLog:
    """Append-only JSON-lines log; each event is one flushed line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = path.open("a", encoding="utf-8")

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event."""
        self._file.write(json.dumps({"ev": event, **fields}, sort_keys=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def _events(path: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by SIGKILL
    return events


def load(directory: Path, resource: Path) -> Logs:  # noqa: C901 - one branch per event
    """Read every ``*.jsonl`` file in ``directory`` and the resource's write log."""
    logs = Logs(writes=read_writes(resource))
    for path in sorted(directory.glob("*.jsonl")):
        for ev in _events(path):
            kind = ev.pop("ev")
            if kind == "grant":
                logs.grants.append(Grant(**ev))
            elif kind == "releasing":
                logs.releasing.append(Releasing(**ev))
            elif kind == "end":
                logs.ends.append(GrantEnd(**ev))
            elif kind == "pause":
                logs.pauses.append(Pause(**ev))
            elif kind == "kill":
                logs.kills.append(Kill(**ev))
            elif kind == "stats":
                logs.stats[ev["worker"]] = WorkerStats(**ev)
            elif kind == "worker":
                logs.workers.append(ev["name"])
            elif kind == "meta":
                logs.meta.update(ev["values"])
    return logs
