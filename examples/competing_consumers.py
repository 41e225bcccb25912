"""Competing consumers: four workers share a batch of ten jobs without double work.

Each worker calls `claim_each()` over the whole batch: it runs the jobs it wins, skips
those another worker holds, and skips those already done (the finished job's lease
carries the `DONE` marker). Workers pass again until every job is done.

Run it with ``python examples/competing_consumers.py`` (needs ``aiolease[testing]``).
"""

from __future__ import annotations

import random

import anyio

from aiolease import Lease, LeaseManager
from aiolease.patterns import claim_each
from aiolease.testing import local_dynamodb

JOBS = [f"job:{n:02d}" for n in range(10)]


async def main() -> dict[str, str]:
    """Process the batch with four workers; return which worker ran which job."""
    done_by: dict[str, str] = {}

    async with local_dynamodb() as env:

        async def process(lease: Lease) -> None:
            await anyio.sleep(random.uniform(0.01, 0.05))  # noqa: S311  (pretend work)
            lease.ensure_held()
            done_by[lease.key] = lease.owner

        async def worker(manager: LeaseManager) -> None:
            while len(done_by) < len(JOBS):
                ran = await claim_each(manager, JOBS, process)
                if not ran:
                    await anyio.sleep(0.05)  # the rest are held by others: look again

        async with anyio.create_task_group() as tg:
            for n in range(4):
                tg.start_soon(worker, env.manager(owner=f"worker-{n}", default_ttl=5))

    for job in JOBS:
        print(f"{job}: {done_by[job]}")
    return done_by


if __name__ == "__main__":
    anyio.run(main)
