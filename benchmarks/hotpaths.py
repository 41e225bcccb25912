"""Profile aiolease's hot paths: ``python benchmarks/hotpaths.py [--html FILE]``.

Runs direct acquire/refresh/release cycles and ``lease()`` blocks (outside and inside a
running manager) under pyinstrument, with the client answered by `StubDynamoDB` at the
HTTP layer (no network, no emulator), and prints the call tree. What is left of the time
outside botocore is aiolease's own code: the place to look before optimising.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
from pyinstrument import Profiler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiolease import LeaseManager
from aiolease.testing._emulator import new_client
from benchmarks._stub import UNUSED_ENDPOINT, StubDynamoDB


async def _workload(cycles: int) -> Profiler:
    async with new_client(UNUSED_ENDPOINT) as client:
        stub = StubDynamoDB(keep=False)
        with stub.attached(client):
            manager = LeaseManager(client, "leases", default_ttl=60)
            await manager.release(await manager.acquire("profile:warm", timeout=0))
            profiler = Profiler(interval=0.0002, async_mode="disabled")
            profiler.start()
            for i in range(cycles):
                lease = await manager.acquire(f"profile:{i}", timeout=0)
                await manager.refresh(lease)
                await manager.release(lease)
                async with manager.lease(f"profile:block:{i}", timeout=0):
                    pass
            async with manager:
                for i in range(cycles):
                    async with manager.lease(f"profile:running:{i}", timeout=0):
                        pass
            profiler.stop()
    return profiler


def main(argv: Sequence[str] | None = None) -> int:
    """Profile the workload and print (or save) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000, help="operations of each kind")
    parser.add_argument("--html", type=Path, help="write pyinstrument's HTML report here")
    args = parser.parse_args(argv)
    profiler = anyio.run(_workload, args.cycles)
    if args.html is not None:
        args.html.write_text(profiler.output_html())
    else:
        print(profiler.output_text(unicode=True, color=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
