"""Tutorial, step 4: acquire and release by hand, with data that outlives the holder.

Needs the environment of ``aiolease local`` (see step 1).
"""

import asyncio
import os

from aiobotocore.session import get_session

from aiolease import LeaseManager


async def main() -> None:
    """Take a lease with acquire(), release it with data, and take it again."""
    session = get_session()
    region = os.environ.get("AWS_REGION")
    table = os.environ.get("AIOLEASE_TABLE", "leases")
    async with session.create_client("dynamodb", region_name=region) as client:
        manager = LeaseManager(client, table, owner="worker-a")
        # --8<-- [start:acquire]
        async with manager:  # heartbeats every lease taken with acquire()
            lease = await manager.acquire(
                "tutorial:job", ttl=10, data={"step": "started"}
            )
            print(f"acquired {lease.key}: fence {lease.fence}, data {lease.data}")

            print(f"released: {await manager.release(lease, data={'step': 'done'})}")
            print(f"released again: {await manager.release(lease)}")  # no longer ours
            print(f"held by anyone: {await manager.get('tutorial:job') is not None}")

            again = await manager.acquire("tutorial:job", ttl=10)
            print(
                f"acquired again: fence +{again.fence - lease.fence}, data {again.data}"
            )
        # Leaving `async with manager:` released it.
        print(f"after the block: {await manager.get('tutorial:job')}")
        # --8<-- [end:acquire]


asyncio.run(main())
