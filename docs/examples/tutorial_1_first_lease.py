"""Tutorial, step 1: create the lease table and hold a first lease.

Start ``aiolease local`` in another shell, paste the ``export`` line it prints, then run
``python docs/examples/tutorial_1_first_lease.py``.
"""

import asyncio
import os

from aiobotocore.session import get_session

from aiolease import LeaseManager


async def main() -> None:
    """Create the table if needed, hold one lease, and look at it from outside."""
    # --8<-- [start:client]
    session = get_session()
    region = os.environ.get("AWS_REGION")  # None: botocore's usual lookup
    table = os.environ.get("AIOLEASE_TABLE", "leases")
    async with session.create_client("dynamodb", region_name=region) as client:
        manager = LeaseManager(client, table, owner="worker-a")
        created = await manager.create_table()
        print(f"table {table!r}: {'created' if created else 'already there'}")
        # --8<-- [end:client]

        # --8<-- [start:lease]
        async with manager.lease("tutorial:report", ttl=10) as lease:
            print(f"{lease.owner} holds {lease.key} with fence {lease.fence}")
            print(f"valid for {lease.remaining:.0f} s more on this host's clock")
            info = await manager.get("tutorial:report")
            if info is not None:
                print(f"the table says: held by {info.owner}, fence {info.fence}")
        print(f"after the block: {await manager.get('tutorial:report')}")
        # --8<-- [end:lease]


asyncio.run(main())
