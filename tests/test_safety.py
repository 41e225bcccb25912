"""The randomized safety workload and its negative controls (see tests/safety/).

Runs on AWS DynamoDB Local only: moto's conditional writes are not atomic under
concurrency and would blame the library for the emulator. The quick workload runs here;
the long one (the figures in docs/reliability.md) runs with ``nox -s safety``, which fails
on any violation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from safety.checker import check, figures
from safety.workload import (
    QUICK,
    RunConfig,
    control_broken_lease,
    control_skew,
    control_stale_write,
    run_workload,
)
from support import Backend

pytestmark = pytest.mark.backends("ddblocal")


async def run_and_check(backend: Backend, directory: Path, config: RunConfig) -> dict[str, Any]:
    assert backend.endpoint_url is not None
    logs, bounds = await run_workload(
        backend.endpoint_url, backend.client, backend.table, directory, config
    )
    violations = check(logs, bounds)
    result = figures(logs, bounds, violations)
    assert violations == [], json.dumps(result, indent=2)
    # The run did exercise what it claims to.
    assert result["grants"] > 100
    assert result["kills"] >= 1
    assert result["failover_after_kill_s"]["count"] >= 1
    assert result["pauses"] == {"block": 2, "stop": 1} or config.chaos is None
    assert result["faults_total"] > 20
    assert result["disturbed_grants"] >= 1
    return result


async def test_quick_workload_has_no_violations(backend: Backend, tmp_path: Path) -> None:
    await run_and_check(backend, tmp_path, QUICK)


# -- negative controls: the checker must fail when a safety mechanism is removed ----------


@pytest.mark.parametrize("fencing", [False, True], ids=["fencing_off", "fencing_on"])
async def test_a_stale_write_after_a_blocked_loop(
    backend: Backend, tmp_path: Path, fencing: bool
) -> None:
    assert backend.endpoint_url is not None
    violations = await control_stale_write(
        backend.endpoint_url, backend.client, backend.table, tmp_path, fencing=fencing
    )
    if fencing:
        assert violations == []
    else:
        assert any(v.startswith("fences:") and "accepted fence" in v for v in violations)


@pytest.mark.parametrize(
    ("offset", "beyond"), [(10.0, True), (0.1, False)], ids=["beyond", "inside"]
)
async def test_a_contender_with_a_skewed_clock(
    backend: Backend, tmp_path: Path, offset: float, beyond: bool
) -> None:
    assert backend.endpoint_url is not None
    violations = await control_skew(
        backend.endpoint_url, backend.client, backend.table, tmp_path, offset=offset
    )
    if beyond:
        assert any(v.startswith("exclusion:") for v in violations)
    else:
        assert violations == []


@pytest.mark.parametrize("broken", [True, False], ids=["no_condition", "real"])
async def test_a_lease_whose_writes_skip_their_condition(
    backend: Backend, tmp_path: Path, broken: bool
) -> None:
    assert backend.endpoint_url is not None
    violations = await control_broken_lease(
        backend.endpoint_url, backend.client, backend.table, tmp_path, broken=broken
    )
    if broken:
        assert any(v.startswith("exclusion:") for v in violations)
    else:
        assert violations == []
