"""OpenTelemetry metrics from lease events."""

from __future__ import annotations

from typing import Any

from conftest import Backend
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from support import new_manager

from aiolease.opentelemetry import metrics_hook


def collected(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


async def test_events_become_counters_and_duration_histograms(backend: Backend, key: str) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    hook = metrics_hook(provider.get_meter("test"))
    manager = new_manager(backend.client, backend.table, hooks=[hook])
    lease = await manager.acquire(key, timeout=0)
    await manager.refresh(lease)
    await manager.release(lease)

    metrics = collected(reader)
    counts = {
        point.attributes["aiolease.event"]: point.value
        for point in metrics["aiolease.lease.events"]
    }
    assert counts == {"acquired": 1, "refreshed": 1, "released": 1}
    for name in (
        "aiolease.lease.acquire.duration",
        "aiolease.lease.refresh.duration",
        "aiolease.lease.held.duration",
    ):
        (point,) = metrics[name]
        assert point.count == 1
    provider.shutdown()


async def test_keys_are_attributes_only_when_asked(backend: Backend, key: str) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    manager = new_manager(
        backend.client,
        backend.table,
        hooks=[metrics_hook(provider.get_meter("test"), key_attribute=True)],
    )
    lease = await manager.acquire(key, timeout=0)
    await manager.release(lease)
    points = collected(reader)["aiolease.lease.events"]
    assert {point.attributes["aiolease.key"] for point in points} == {key}
    assert {point.attributes.get("aiolease.released") for point in points} == {None, True}
    provider.shutdown()
