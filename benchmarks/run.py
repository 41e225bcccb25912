"""Run the benchmarks and print one table: ``python benchmarks/run.py [--quick]``.

Every figure is taken side by side with what it is compared against, in this run, on
AWS DynamoDB Local in a child process. See docs/performance.md for how to read it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import contention, failover, overhead, peer, scale
from benchmarks._common import Row, emulator, table, warm_up

Section = Callable[..., Awaitable[list[Row]]]

SECTIONS: dict[str, Section] = {
    "overhead": overhead.run,
    "peer": peer.run,
    "scale": scale.run,
    "contention": contention.run,
    "failover": failover.run,
}


async def _main(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    wanted = args.only or list(SECTIONS)
    async with emulator() as env:
        await warm_up(env)
        for name in wanted:
            print(f"{name} ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            found = await SECTIONS[name](env, quick=args.quick, say=_say)
            rows.extend(found)
            print(
                f"{name}: {len(found)} figures in {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return rows


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sections asked for and print the table; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--only", action="append", choices=list(SECTIONS), help="run only this section"
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this file as JSON")
    args = parser.parse_args(argv)
    rows = anyio.run(_main, args)
    print(table(rows))
    if args.json is not None:
        meta: dict[str, Any] = {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "quick": args.quick,
        }
        args.json.write_text(
            json.dumps({"meta": meta, "rows": [row.as_dict() for row in rows]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
