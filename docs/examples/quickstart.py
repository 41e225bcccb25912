"""The quick start of the README and of the documentation's home page.

It reads the standard AWS configuration. To run it without an AWS account, start
``aiolease local`` in another shell and paste the ``export`` line it prints.
"""

# --8<-- [start:quickstart]
import asyncio

from aiobotocore.session import get_session

from aiolease import LeaseManager


async def write_report(fence: int) -> None:
    """The protected work; see "Fencing the protected resource"."""


async def main() -> None:
    """Make sure the table exists, then write the report under its lease."""
    session = get_session()  # region and credentials: the usual AWS configuration
    async with session.create_client("dynamodb") as client:
        manager = LeaseManager(client, "leases")
        created = await manager.create_table()  # idempotent; on-demand; enables TTL
        state = "created" if created else "already there"
        print(f"table 'leases' in {client.meta.region_name}: {state}")

        async with manager.lease("report:nightly", ttl=30) as lease:
            # Only one holder at a time runs this block. Pass the fence along with
            # every write so the resource can refuse a holder that has fallen behind.
            await write_report(fence=lease.fence)
            print(f"wrote the report under lease {lease.key!r}, fence {lease.fence}")
        print("released it: the next holder gets a higher fence")


asyncio.run(main())
# --8<-- [end:quickstart]
