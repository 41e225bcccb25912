"""Tutorial, step 3: the heartbeat keeps a lease; losing it cancels the work.

Needs the environment of ``aiolease local`` (see step 1). Runs for about 4 seconds.
"""

import asyncio
import os
from collections import Counter

from aiobotocore.session import get_session

from aiolease import LeaseEvent, LeaseLostError, LeaseManager


async def main() -> None:
    """Hold a 2 s lease for 3 s, then have an operator break it mid-work."""
    session = get_session()
    region = os.environ.get("AWS_REGION")
    table = os.environ.get("AIOLEASE_TABLE", "leases")
    async with session.create_client("dynamodb", region_name=region) as client:
        # --8<-- [start:heartbeat]
        events: Counter[str] = Counter()

        def count(event: LeaseEvent) -> None:
            events[event.kind] += 1

        worker = LeaseManager(client, table, owner="worker-a", hooks=[count])
        operator = LeaseManager(client, table, owner="operator")
        try:
            async with worker.lease("tutorial:heartbeat", ttl=2) as lease:
                await asyncio.sleep(3)  # longer than the ttl
                refreshed = events["refreshed"]
                print(f"after 3 s: held {lease.held}, refreshed {refreshed} times")

                await operator.break_lease("tutorial:heartbeat")
                print("operator: lease broken")
                await asyncio.sleep(10)  # cancelled at the next refresh
                print("never printed")
        except LeaseLostError as lost:
            why = f"reason: {lost.reason}"
            print(f"worker-a: lost {lost.key} ({why}); the body was cancelled")
        # --8<-- [end:heartbeat]


asyncio.run(main())
