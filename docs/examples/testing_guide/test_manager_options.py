"""The plugin's ``lease_manager`` fixture, tuned for this module's tests."""

import pytest

from aiolease import LeaseManager


# --8<-- [start:options]
@pytest.fixture
def aiolease_manager_options() -> dict[str, object]:
    return {"default_ttl": 2, "poll_interval": 0.05}


async def test_report_runs_once(lease_manager: LeaseManager) -> None:
    async with lease_manager.lease("report:nightly") as lease:
        assert lease.held
        assert lease.ttl == 2
    # --8<-- [end:options]
