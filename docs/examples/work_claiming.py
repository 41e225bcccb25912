"""Competing consumers: three workers share six jobs, each job done exactly once.

Runs against an embedded DynamoDB: ``python docs/examples/work_claiming.py`` (needs
``aiolease[testing]``).
"""

import anyio

from aiolease import Lease, LeaseManager
from aiolease.patterns import DONE, claim_any, claim_each, is_done
from aiolease.testing import local_dynamodb

JOBS = [f"job:{n}" for n in range(6)]
done_by: dict[str, list[str]] = {job: [] for job in JOBS}


async def run_job(job: str, *, owner: str, fence: int) -> None:
    """The work; the fence goes with every write it makes."""
    await anyio.sleep(0.1)
    done_by[job].append(f"{owner} (fence {fence})")


async def claim_one(manager: LeaseManager, job_ids: list[str]) -> None:
    """Claim any one free job that is not done yet, run it, mark it done."""
    # --8<-- [start:claim-any]
    lease = await claim_any(manager, job_ids, ttl=60, skip=is_done)
    if lease is not None:
        try:
            await run_job(lease.key, owner=manager.owner, fence=lease.fence)
        finally:
            await manager.release(lease, data=DONE)
    # --8<-- [end:claim-any]


async def worker(manager: LeaseManager) -> None:
    """Work through the batch: every job this worker wins, once each."""

    async def run(lease: Lease) -> None:
        await run_job(lease.key, owner=manager.owner, fence=lease.fence)

    # --8<-- [start:claim-each]
    async with manager:  # heartbeats the leases claim_each takes
        finished = await claim_each(manager, JOBS, run, ttl=60)
    # --8<-- [end:claim-each]
    print(f"{manager.owner} ran {len(finished)} jobs")


async def main() -> None:
    """One claim_any, then three workers with claim_each; print who ran what."""
    async with local_dynamodb() as env:
        first = env.manager(owner="worker-0")
        async with first:
            await claim_one(first, JOBS)
        async with anyio.create_task_group() as tg:
            for n in range(1, 4):
                tg.start_soon(worker, env.manager(owner=f"worker-{n}"))
    for job, runs in done_by.items():
        print(f"{job}: {', '.join(runs)}")


anyio.run(main)
