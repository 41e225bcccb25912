"""Lease events as metrics through a hook, and aiolease's log records.

Runs against an embedded DynamoDB: ``python docs/examples/hooks.py`` (needs
``aiolease[testing]``).
"""

import logging
from collections import Counter

import anyio

from aiolease import Lease, LeaseEvent, LeaseManager
from aiolease.testing import local_dynamodb


class Metrics:
    """Stands in for a metrics client (StatsD, Prometheus, ...)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def increment(self, name: str, *, tags: dict[str, str]) -> None:
        """Count one occurrence of `name`."""
        self.counts[f"{name} {','.join(f'{k}={v}' for k, v in tags.items())}"] += 1


metrics = Metrics()


# --8<-- [start:hook]
def count(event: LeaseEvent) -> None:
    """Count every lease event, by kind and key."""
    metrics.increment(f"lease.{event.kind}", tags={"key": event.key})
    # --8<-- [end:hook]


async def release_soon(manager: LeaseManager, lease: Lease) -> None:
    """Release `lease` after a moment."""
    await anyio.sleep(0.3)
    await manager.release(lease)


async def main() -> None:
    """Hold a lease while another manager tries for it, then print the counts."""
    # --8<-- [start:logging]
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiolease").setLevel(logging.INFO)
    # --8<-- [end:logging]
    async with local_dynamodb() as env:
        client = env.client
        # --8<-- [start:manager]
        manager = LeaseManager(client, "leases", hooks=[count])
        # --8<-- [end:manager]
        other = env.manager(owner="other")
        held = await other.acquire("report:nightly")
        async with anyio.create_task_group() as tg:
            tg.start_soon(release_soon, other, held)
            async with manager.lease("report:nightly", ttl=1.5, timeout=5):  # waits
                await anyio.sleep(1.2)  # heartbeats every ttl / 3
    for name, value in sorted(metrics.counts.items()):
        print(name, value)


anyio.run(main)
