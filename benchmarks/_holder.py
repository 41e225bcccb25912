"""A lease holder to be killed, run by failover.py as a child process.

``python benchmarks/_holder.py ENDPOINT TABLE KEY TTL MAX_CLOCK_SKEW POLL_INTERVAL``
takes KEY with ``async with manager.lease(...)``, prints ``held <fence>``, then
``refreshed <expires_at>`` (the stored expiry, epoch seconds) after every heartbeat, and
holds until it is killed. A process of its own, so that SIGKILL stops its heartbeats the
way a crashed host would.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiolease import Lease, LeaseEvent, LeaseManager
from aiolease.testing._emulator import new_client


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _hold(argv: list[str]) -> None:
    endpoint, table, key, ttl, skew, poll = argv
    held: list[Lease] = []

    def report(event: LeaseEvent) -> None:
        if event.kind == "refreshed" and held:
            _say(f"refreshed {held[0].expires_at.timestamp()}")

    async with new_client(endpoint) as client:
        manager = LeaseManager(
            client,
            table,
            owner="killed-holder",
            default_ttl=float(ttl),
            max_clock_skew=float(skew),
            poll_interval=float(poll),
            hooks=[report],
        )
        async with manager.lease(key) as lease:
            held.append(lease)
            _say(f"held {lease.fence}")
            await anyio.sleep_forever()


def main(argv: list[str]) -> None:
    """Hold the lease the arguments name until killed."""
    anyio.run(_hold, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
