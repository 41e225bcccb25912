"""The fenced resource: a SQLite file shared by every worker, task or process.

Each write runs in its own ``BEGIN IMMEDIATE`` transaction (one writer at a time, in WAL
mode), which reads the highest fence accepted for the key, refuses a lower one, and logs
the attempt, accepted or not, with the worker's own timestamps: when ``ensure_held()``
passed (``t_check``), the lease's local deadline then, and when the write took effect
(``t_write``, read inside the transaction). With ``fencing=False`` it accepts every write:
a negative control for the checker.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FencedResource", "Write", "create", "read_writes"]

_BUSY_TIMEOUT = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fences (key TEXT PRIMARY KEY, fence INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS writes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    fence INTEGER NOT NULL,
    worker TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    t_check REAL NOT NULL,
    t_write REAL NOT NULL,
    deadline REAL NOT NULL,
    accepted INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Write:
    """One write attempt as the resource logged it (``id`` is the commit order)."""

    id: int
    key: str
    fence: int
    worker: str
    grant: str
    t_check: float
    t_write: float
    deadline: float
    accepted: bool


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT, isolation_level=None)
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def create(path: Path) -> None:
    """Create the resource's file, in WAL mode."""
    connection = _connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(_SCHEMA)
    finally:
        connection.close()


class FencedResource:
    """One connection to the resource; use one per worker (or per process)."""

    def __init__(self, path: Path, *, fencing: bool = True) -> None:
        self.fencing = fencing
        self._db = _connect(path)

    def write(
        self, key: str, fence: int, *, worker: str, grant: str, t_check: float, deadline: float
    ) -> bool:
        """Apply one write under ``fence``; return whether it was accepted."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            t_write = time.monotonic()
            row = db.execute("SELECT fence FROM fences WHERE key = ?", (key,)).fetchone()
            highest = None if row is None else int(row[0])
            accepted = not self.fencing or highest is None or fence >= highest
            if accepted:
                db.execute(
                    "INSERT INTO fences (key, fence) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET fence = excluded.fence",
                    (key, fence if highest is None or not self.fencing else max(fence, highest)),
                )
            db.execute(
                "INSERT INTO writes (key, fence, worker, grant_id, t_check, t_write, deadline,"
                " accepted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, fence, worker, grant, t_check, t_write, deadline, int(accepted)),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return accepted

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


def read_writes(path: Path) -> list[Write]:
    """Return every logged write attempt in commit order."""
    connection = _connect(path)
    try:
        rows = connection.execute(
            "SELECT id, key, fence, worker, grant_id, t_check, t_write, deadline, accepted"
            " FROM writes ORDER BY id"
        ).fetchall()
    finally:
        connection.close()
    return [
        Write(
            id=row[0],
            key=row[1],
            fence=row[2],
            worker=row[3],
            grant=row[4],
            t_check=row[5],
            t_write=row[6],
            deadline=row[7],
            accepted=bool(row[8]),
        )
        for row in rows
    ]
