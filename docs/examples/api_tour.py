"""A tour of the LeaseManager API, as summarised in the README.

Runs against an embedded DynamoDB: ``python docs/examples/api_tour.py`` (needs
``aiolease[testing]``).
"""

import anyio

from aiolease import LeaseHeldError, LeaseManager, LeaseTimeoutError
from aiolease.testing import local_dynamodb


async def tour(manager: LeaseManager, other: LeaseManager) -> None:
    """Every call of the API once; `other` plays a second process."""
    # --8<-- [start:api]
    lease = await manager.acquire("report:nightly", ttl=30)  # waits; timeout=None
    try:
        await other.acquire("report:nightly", timeout=0)  # one try
    except LeaseHeldError as held:
        print(f"held by {held.owner}; takeover possible in {held.retry_after:.0f} s")
    try:
        await other.acquire("report:nightly", timeout=1)  # waits up to 1 s
    except LeaseTimeoutError:
        print("still held after 1 s")

    await manager.refresh(lease)  # extends it by its ttl from now
    async for info in manager.list(prefix="report:"):  # held leases under a prefix
        print(info.key, info.owner, info.fence, info.data)
    print(await manager.release(lease))  # True; False if it was no longer ours
    print(await manager.get("report:nightly"))  # LeaseInfo, or None when not held

    await other.acquire("job:42")  # a holder that has gone quiet
    broken = await manager.break_lease(
        "job:42"
    )  # operator force-release; keeps the fence
    print(f"broke the lease of {broken.owner if broken else None}")
    # --8<-- [end:api]


async def main() -> None:
    """Run the tour with two managers on one embedded table."""
    async with local_dynamodb() as env:
        await tour(env.manager(owner="worker-a"), env.manager(owner="worker-b"))


anyio.run(main)
