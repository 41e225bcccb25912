"""Leader election with failover: three candidates, one leader at a time.

Each candidate runs `LeaderElection.run()`. The leader does its periodic work with
the term's fence; when it goes away (here: its task is cancelled, as on shutdown) it
releases the lease, and another candidate takes over with a higher fence.

Run it with ``python examples/leader_election.py`` (needs ``aiolease[testing]``).
"""

from __future__ import annotations

import anyio

from aiolease import Lease
from aiolease.patterns import LeaderElection
from aiolease.testing import local_dynamodb


async def main() -> list[tuple[str, int]]:
    """Elect a leader, stop it, see another take over: return its terms."""
    terms: list[tuple[str, int]] = []
    changed = anyio.Event()

    async with local_dynamodb() as env:

        async def candidate(name: str, scope: anyio.CancelScope) -> None:
            manager = env.manager(owner=name, default_ttl=3, poll_interval=0.1)

            async def lead(lease: Lease) -> None:
                terms.append((name, lease.fence))
                changed.set()
                while True:
                    lease.ensure_held()
                    print(f"{name} (fence {lease.fence}): doing the leader's work")
                    await anyio.sleep(0.2)

            async def stopped() -> None:
                print(f"{name}: stepped down")

            async def new_leader(owner: str) -> None:
                if owner != name:
                    print(f"{name}: following {owner}")

            election = LeaderElection(
                manager,
                "election:scheduler",
                on_started_leading=lead,
                on_stopped_leading=stopped,
                on_new_leader=new_leader,
            )
            with scope:
                await election.run()

        async with anyio.create_task_group() as tg:
            scopes = {name: anyio.CancelScope() for name in ("alpha", "beta", "gamma")}
            for name, scope in scopes.items():
                tg.start_soon(candidate, name, scope)
            await changed.wait()
            await anyio.sleep(0.5)
            changed = anyio.Event()
            first, _ = terms[0]
            print(f"stopping {first}")
            scopes[first].cancel()
            await changed.wait()
            await anyio.sleep(0.5)
            tg.cancel_scope.cancel()

    print("terms:", terms)
    return terms


if __name__ == "__main__":
    anyio.run(main)
