"""Cron runs the nightly report on three hosts at once; it runs on one.

Runs against an embedded DynamoDB: ``python docs/examples/singleton_job.py`` (needs
``aiolease[testing]``).
"""

from datetime import date

import anyio

from aiolease import LeaseManager
from aiolease.patterns import singleton
from aiolease.testing import local_dynamodb


async def cron_tick(manager: LeaseManager, today: date) -> None:
    """What cron starts on every host."""

    # --8<-- [start:singleton]
    @singleton(manager, "cron:nightly-report", ttl=300)
    async def nightly_report(day: date) -> str:
        await anyio.sleep(0.5)  # the work
        return f"report for {day}"

    report = await nightly_report(today)  # None if another host is running it
    # --8<-- [end:singleton]
    print(f"{manager.owner}: {report or 'skipped, another host has it'}")


async def main() -> None:
    """Three hosts, one tick."""
    async with local_dynamodb() as env, anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(cron_tick, env.manager(owner=f"host-{n}"), date(2025, 1, 31))


anyio.run(main)
