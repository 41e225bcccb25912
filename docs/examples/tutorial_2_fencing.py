"""Tutorial, step 2: contention, takeover, and the fence that stops a late writer.

Needs the environment of ``aiolease local`` (see step 1). Runs for about 3 seconds.
"""

import asyncio
import os
import time

from aiobotocore.session import get_session

from aiolease import LeaseHeldError, LeaseManager


# --8<-- [start:resource]
class Reports:
    """The protected resource: it refuses a write with a fence below one it has seen."""

    def __init__(self) -> None:
        self.highest_fence = 0
        self.body = ""

    def write(self, body: str, *, fence: int) -> bool:
        """Store `body` unless a holder with a higher fence has written."""
        if fence < self.highest_fence:
            return False
        self.highest_fence, self.body = fence, body
        return True
        # --8<-- [end:resource]


async def main() -> None:
    """Two workers, one key: one stalls, the other takes over, the fence decides."""
    session = get_session()
    region = os.environ.get("AWS_REGION")
    table = os.environ.get("AIOLEASE_TABLE", "leases")
    async with session.create_client("dynamodb", region_name=region) as client:
        # --8<-- [start:contention]
        a = LeaseManager(client, table, owner="worker-a", default_ttl=2)
        b = LeaseManager(client, table, owner="worker-b", default_ttl=2)
        reports = Reports()

        stale = await a.acquire("tutorial:fenced")
        print(f"worker-a: acquired, fence {stale.fence}")
        try:
            await b.acquire("tutorial:fenced", timeout=0)  # one try
        except LeaseHeldError as held:
            wait = f"{held.retry_after:.0f} s at most"
            print(f"worker-b: held by {held.owner}; takeover in {wait}")
        # --8<-- [end:contention]

        # --8<-- [start:takeover]
        # worker-a stalls: nothing refreshes its lease (no heartbeat runs).
        started = time.monotonic()
        fresh = await b.acquire("tutorial:fenced")  # waits until a takeover is safe
        waited = time.monotonic() - started
        print(f"worker-b: acquired after {waited:.0f} s, fence {fresh.fence}")
        print(f"worker-b writes: {reports.write('new', fence=fresh.fence)}")

        # worker-a wakes up and, not checking its lease, writes with its old fence.
        print(f"worker-a: lease.held is {stale.held}")
        print(f"worker-a writes: {reports.write('stale', fence=stale.fence)}")
        # --8<-- [end:takeover]

        # --8<-- [start:release]
        print(f"worker-a releases: {await a.release(stale)}")  # False: no longer ours
        print(f"worker-b releases: {await b.release(fresh)}")  # True
        # --8<-- [end:release]


asyncio.run(main())
