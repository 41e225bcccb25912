"""One regeneration of a stale page across the fleet; everyone else serves stale.

Two servers (two managers, as on two hosts) get three concurrent requests each for the
same stale page. Runs against an embedded DynamoDB:
``python docs/examples/single_flight_guard.py`` (needs ``aiolease[testing]``).
"""

from collections import Counter

import anyio

from aiolease import Lease
from aiolease.patterns import Busy, Regenerated, SingleFlight
from aiolease.testing import local_dynamodb


class Cache:
    """A shared page cache that refuses writes under an older fence."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, int]] = {"/products": ("<stale>", 0)}

    def get(self, path: str) -> str:
        """The cached page."""
        return self.pages[path][0]

    def put(self, path: str, html: str, *, fence: int) -> None:
        """Store `html` unless a newer holder already wrote `path`."""
        if fence < self.pages[path][1]:
            raise RuntimeError(f"stale write to {path}")
        self.pages[path] = (html, fence)


cache = Cache()
renders: Counter[str] = Counter()


async def render(path: str) -> str:
    """The slow part: build the page."""
    renders[path] += 1
    await anyio.sleep(0.3)
    return f"<fresh {path}>"


# --8<-- [start:guard]
async def regenerate(lease: Lease) -> str:
    """Rebuild the page; runs on one server of the fleet at a time."""
    html = await render("/products")
    lease.ensure_held()  # right before the side effect
    cache.put("/products", html, fence=lease.fence)
    return html


async def products_page(flight: SingleFlight) -> str:
    """Answer a request: the fresh page if this call rebuilt it, else the stale one."""
    match await flight.run("isr:/products", regenerate):
        case Regenerated(value=html, fence=fence):
            print(f"regenerated under fence {fence}")
            return html
        case Busy(owner=owner, retry_after=retry_after):
            print(f"busy: {owner} is on it; check again within {retry_after:.0f} s")
            return cache.get("/products")
    # --8<-- [end:guard]


async def main() -> None:
    """Two servers, three concurrent requests each."""
    async with local_dynamodb() as env:
        flights = [
            # --8<-- [start:flight]
            SingleFlight(manager, ttl=30)  # one per process, shared by its requests
            # --8<-- [end:flight]
            for manager in (
                env.manager(owner="server-1"),
                env.manager(owner="server-2"),
            )
        ]
        async with anyio.create_task_group() as tg:
            for flight in flights:
                for _ in range(3):
                    tg.start_soon(products_page, flight)
    print(f"renders: {renders['/products']}, cache: {cache.get('/products')}")


anyio.run(main)
