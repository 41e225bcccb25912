"""ISR-style regeneration guard: one server regenerates a stale page, others serve it.

Three "servers" (each its own LeaseManager, as on three hosts) get requests for the
same stale page at once. `SingleFlight` lets exactly one of them regenerate it under a
lease; the others serve the stale copy and learn who is regenerating and when to look
again. Within one server, concurrent requests share one attempt (coalescing). The cache
keeps the fence of the write in force and refuses older ones.

Run it with ``python examples/isr_guard.py`` (needs ``aiolease[testing]`` for the local
DynamoDB).
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from aiolease import Lease
from aiolease.patterns import Busy, Regenerated, SingleFlight
from aiolease.testing import local_dynamodb


@dataclass
class Page:
    """A cached page and the fence of the lease it was written under."""

    html: str
    fence: int = 0


class Cache:
    """A cache that refuses writes from an older lease (fencing)."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}

    def put(self, path: str, html: str, *, fence: int) -> None:
        """Store `html` for `path`, unless a write under a newer fence is in force."""
        current = self.pages.get(path)
        if current is not None and fence < current.fence:
            raise RuntimeError(
                f"stale write to {path} (fence {fence} < {current.fence})"
            )
        self.pages[path] = Page(html, fence)


async def main() -> list[str]:
    """Serve 3 x 4 concurrent requests for a stale page; return what each one did."""
    cache = Cache()
    cache.put("/products", "<old>", fence=0)
    served: list[str] = []

    async with local_dynamodb() as env:
        servers = [env.manager(owner=f"server-{n}", default_ttl=10) for n in range(3)]
        flights = [SingleFlight(manager) for manager in servers]

        async def regenerate(lease: Lease) -> str:
            await anyio.sleep(0.2)  # render the page
            html = f"<new by {lease.owner}>"
            lease.ensure_held()  # right before the side effect
            cache.put("/products", html, fence=lease.fence)
            return html

        async def handle(server: int) -> None:
            outcome = await flights[server].run("isr:/products", regenerate)
            match outcome:
                case Regenerated(value=html, fence=fence):
                    served.append(
                        f"server-{server}: regenerated {html} (fence {fence})"
                    )
                case Busy(owner=owner, retry_after=retry_after):
                    served.append(
                        f"server-{server}: served stale, {owner} is regenerating "
                        f"(check again within {retry_after:.1f} s)"
                    )

        async with anyio.create_task_group() as tg:
            for server in range(3):
                for _ in range(4):
                    tg.start_soon(handle, server)

    for line in served:
        print(line)
    print("cache:", cache.pages["/products"])
    return served


if __name__ == "__main__":
    anyio.run(main)
