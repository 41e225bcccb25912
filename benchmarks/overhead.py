"""Overhead against the floor: aiolease's calls against raw aiobotocore calls.

Each round first runs the library's operations on fresh keys, then replays the very
requests the library sent (same expressions, same values, other keys) as raw
``update_item`` calls through the same client; the order alternates between rounds. The
ratio is the median over rounds of library / raw, for client CPU and for wall time.

A second part isolates aiolease's own code: the same operations through `DirectClient`
(answers computed in Python, no botocore, no network), against one raw aiobotocore call
answered by `StubDynamoDB` (signing, serialisation and parsing, but no network).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiolease import LeaseManager
from aiolease.testing._emulator import new_client

from ._common import Env, RequestCounter, Row, Sample, captured_updates, measure, median_ratio
from ._stub import UNUSED_ENDPOINT, DirectClient, StubDynamoDB

__all__ = ["run"]

SECTION = "overhead"
OPERATIONS = ("acquire", "refresh", "release")


async def _captured(env: Env, manager: LeaseManager, keys: list[str]) -> dict[str, list[Any]]:
    """The requests aiolease sends for acquire, refresh and release of `keys`."""
    captured: dict[str, list[Any]] = {}
    with captured_updates(env.client) as sent:
        leases = [await manager.acquire(key, timeout=0) for key in keys]
    captured["acquire"] = sent
    with captured_updates(env.client) as sent:
        for lease in leases:
            await manager.refresh(lease)
    captured["refresh"] = sent
    with captured_updates(env.client) as sent:
        for lease in leases:
            await manager.release(lease)
    captured["release"] = sent
    return captured


def _rekeyed(params: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    return [
        {**request, "Key": {name: {"S": key} for name in request["Key"]}}
        for request, key in zip(params, keys, strict=True)
    ]


async def _raw(env: Env, requests: list[dict[str, Any]]) -> None:
    for request in requests:
        response = await env.client.update_item(**request)
        if "Attributes" not in response:
            raise AssertionError(f"raw UpdateItem returned no attributes: {response!r}")


async def _library_round(
    manager: LeaseManager, keys: list[str], samples: dict[str, Sample]
) -> None:
    with measure(len(keys)) as samples["acquire"]:
        leases = [await manager.acquire(key, timeout=0) for key in keys]
    with measure(len(keys)) as samples["refresh"]:
        for lease in leases:
            await manager.refresh(lease)
    with measure(len(keys)) as samples["release"]:
        for lease in leases:
            if not await manager.release(lease):
                raise AssertionError(f"release of {lease.key!r} reported not released")


async def _raw_round(env: Env, requests: dict[str, list[Any]], samples: dict[str, Sample]) -> None:
    for operation in OPERATIONS:
        with measure(len(requests[operation])) as samples[operation]:
            await _raw(env, requests[operation])


async def _lease_blocks(manager: LeaseManager, keys: list[str]) -> Sample:
    with measure(len(keys)) as sample:
        for key in keys:
            async with manager.lease(key, timeout=0):
                pass
    return sample


async def _raw_pairs(env: Env, acquires: list[Any], releases: list[Any]) -> Sample:
    with measure(len(acquires)) as sample:
        for acquire, release in zip(acquires, releases, strict=True):
            await _raw(env, [acquire])
            await _raw(env, [release])
    return sample


async def _count_requests(env: Env, manager: LeaseManager) -> dict[str, int]:
    """Requests sent by one uncontended acquire, refresh, release and lease() block."""
    counter = RequestCounter()
    counts: dict[str, int] = {}
    warm = await manager.acquire("overhead:warm", timeout=0)  # the one-off table check
    await manager.release(warm)
    with counter.attached(env.client):
        lease = await manager.acquire("overhead:count", timeout=0)
        counts["acquire"] = counter.total()
        counter.reset()
        await manager.refresh(lease)
        counts["refresh"] = counter.total()
        counter.reset()
        await manager.release(lease)
        counts["release"] = counter.total()
        counter.reset()
        async with manager.lease("overhead:count:block", timeout=0):
            pass
        counts["lease() block"] = counter.total()
    return counts


async def _alone(*, quick: bool) -> list[Row]:
    """The CPU of aiolease's own code per operation, against one call with no network."""
    size, rounds = (500, 3) if quick else (2000, 5)
    own: dict[str, list[float]] = {op: [] for op in (*OPERATIONS, "lease", "running")}
    floor: list[float] = []
    async with new_client(UNUSED_ENDPOINT) as client:
        stub = StubDynamoDB(keep=False)
        direct: Any = DirectClient(client, stub)  # only the operations aiolease uses here
        manager = LeaseManager(direct, "leases", default_ttl=60)
        with stub.attached(client):
            env = Env(UNUSED_ENDPOINT, client, "leases")
            http = LeaseManager(client, "leases", default_ttl=60)
            refreshes = (await _captured(env, http, [f"alone:{i}" for i in range(size)]))["refresh"]
            for r in range(rounds):
                samples: dict[str, Sample] = {}
                await _library_round(manager, [f"alone:{r}:{i}" for i in range(size)], samples)
                samples["lease"] = await _lease_blocks(
                    manager, [f"alone:block:{r}:{i}" for i in range(size)]
                )
                async with manager:
                    samples["running"] = await _lease_blocks(
                        manager, [f"alone:running:{r}:{i}" for i in range(size)]
                    )
                for op, sample in samples.items():
                    own[op].append(sample.cpu_per_op)
                with measure(size) as raw:
                    await _raw(env, refreshes)
                floor.append(raw.cpu_per_op)
    call = sorted(floor)[len(floor) // 2]
    labels = {
        "acquire": "direct acquire",
        "refresh": "direct refresh",
        "release": "direct release",
        "lease": "lease() block",
        "running": "lease() block in a running manager",
    }
    return [
        Row(
            SECTION,
            f"aiolease's own CPU per {labels[op]}",
            1e6 * sorted(values)[len(values) // 2],
            "µs",
            1e6 * call,
            "one aiobotocore call, no network",
            note="client stubbed below aiolease / at the HTTP layer" if op == "acquire" else "",
        )
        for op, values in own.items()
    ]


async def run(env: Env, *, quick: bool = False, say: Callable[[str], object] = print) -> list[Row]:
    """Measure and return the overhead rows."""
    size, rounds = (50, 3) if quick else (200, 7)
    manager = env.manager(default_ttl=60)
    counts = await _count_requests(env, manager)
    blocks = ("lease", "running")
    cpu: dict[str, list[tuple[float, float]]] = {op: [] for op in (*OPERATIONS, *blocks)}
    wall: dict[str, list[tuple[float, float]]] = {op: [] for op in cpu}
    lib: dict[str, list[Sample]] = {op: [] for op in cpu}
    raw: dict[str, list[Sample]] = {op: [] for op in cpu}
    captured = await _captured(env, manager, [f"overhead:capture:{i}" for i in range(size)])
    for r in range(rounds):
        lib_keys = [f"overhead:lib:{r}:{i}" for i in range(size)]
        raw_keys = [f"overhead:raw:{r}:{i}" for i in range(size)]
        requests = {op: _rekeyed(captured[op], raw_keys) for op in OPERATIONS}
        block_keys = {op: [f"overhead:{op}:{r}:{i}" for i in range(size)] for op in blocks}
        pairs = {
            op: tuple(
                _rekeyed(captured[step], [f"overhead:pair:{op}:{r}:{i}" for i in range(size)])
                for step in ("acquire", "release")
            )
            for op in blocks
        }
        lib_samples: dict[str, Sample] = {}
        raw_samples: dict[str, Sample] = {}
        steps: list[Callable[[], Awaitable[None]]]

        async def library() -> None:
            await _library_round(manager, lib_keys, lib_samples)  # noqa: B023
            lib_samples["lease"] = await _lease_blocks(manager, block_keys["lease"])  # noqa: B023
            async with manager:
                lib_samples["running"] = await _lease_blocks(manager, block_keys["running"])  # noqa: B023

        async def baseline() -> None:
            await _raw_round(env, requests, raw_samples)  # noqa: B023
            for op in blocks:
                raw_samples[op] = await _raw_pairs(env, *pairs[op])  # noqa: B023

        steps = [library, baseline] if r % 2 == 0 else [baseline, library]
        for step in steps:
            await step()
        for op, pairs_cpu in cpu.items():
            a, b = lib_samples[op], raw_samples[op]
            pairs_cpu.append((a.cpu_per_op, b.cpu_per_op))
            wall[op].append((a.wall_per_op, b.wall_per_op))
            lib[op].append(a)
            raw[op].append(b)
        say(f"  overhead round {r + 1}/{rounds} done")
    rows = []
    labels = {"lease": "lease() block", "running": "lease() block in a running manager"}
    for op, pairs_cpu in cpu.items():
        label = labels.get(op, f"direct {op}")
        base = "raw acquire + release" if op in blocks else f"raw {op}"
        cpu_ratio = median_ratio(pairs_cpu)
        wall_ratio = median_ratio(wall[op])
        raw_cpu = sorted(s.cpu_per_op for s in raw[op])[len(raw[op]) // 2]
        raw_wall = sorted(s.wall_per_op for s in raw[op])[len(raw[op]) // 2]
        rows.append(
            Row(
                SECTION,
                f"{label}: client CPU per call",
                raw_cpu * cpu_ratio * 1000,
                "ms",
                raw_cpu * 1000,
                base,
                note=f"median of {rounds} rounds of {size}",
            )
        )
        rows.append(
            Row(
                SECTION,
                f"{label}: wall time per call",
                raw_wall * wall_ratio * 1000,
                "ms",
                raw_wall * 1000,
                base,
            )
        )
    rows.extend(await _alone(quick=quick))
    for op, count in counts.items():
        expected = 2 if op == "lease() block" else 1
        rows.append(
            Row(
                SECTION,
                f"requests per uncontended {op}",
                count,
                "requests",
                expected,
                "the floor",
            )
        )
    return rows
