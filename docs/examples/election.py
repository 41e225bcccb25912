"""Leader election: one candidate leads, the other takes over when it steps down.

Runs against an embedded DynamoDB: ``python docs/examples/election.py`` (needs
``aiolease[testing]``).
"""

import anyio

from aiolease import Lease, LeaseManager
from aiolease.patterns import LeaderElection
from aiolease.testing import local_dynamodb


async def schedule_due_jobs(owner: str, *, fence: int) -> None:
    """The leader's work; the fence goes with every write it makes."""
    print(f"{owner}: scheduling jobs under fence {fence}")


def make_election(manager: LeaseManager) -> LeaderElection:
    """The election of one candidate; the hooks say what happens to it."""

    # --8<-- [start:election]
    async def lead(lease: Lease) -> None:
        while True:
            lease.ensure_held()
            await schedule_due_jobs(manager.owner, fence=lease.fence)
            await anyio.sleep(1)

    async def stopped() -> None:
        print(f"{manager.owner}: no longer leader")

    async def new_leader(owner: str) -> None:
        print(f"{manager.owner}: the leader is now {owner}")

    return LeaderElection(
        manager,
        "election:scheduler",
        ttl=15,
        on_started_leading=lead,
        on_stopped_leading=stopped,
        on_new_leader=new_leader,
    )
    # --8<-- [end:election]


async def main() -> None:
    """Start one candidate, then a second; stop the first and watch the handover."""
    async with local_dynamodb() as env:
        first = make_election(env.manager(owner="candidate-1", poll_interval=0.2))
        second = make_election(env.manager(owner="candidate-2", poll_interval=0.2))
        async with anyio.create_task_group() as everyone:
            # --8<-- [start:run]
            async with anyio.create_task_group() as tg:
                tg.start_soon(first.run)  # campaigns, leads, steps down when cancelled
                # --8<-- [end:run]
                await anyio.sleep(0.5)
                everyone.start_soon(second.run)
                await anyio.sleep(0.5)
                tg.cancel_scope.cancel()  # candidate-1 stops: it releases the lease
            await anyio.sleep(1)
            everyone.cancel_scope.cancel()


anyio.run(main)
