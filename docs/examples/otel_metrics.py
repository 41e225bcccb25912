"""Lease events as OpenTelemetry metrics, read back with the SDK's in-memory reader.

Needs ``aiolease[opentelemetry,testing]`` and ``opentelemetry-sdk``:
``python docs/examples/otel_metrics.py``.
"""

import anyio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from aiolease import LeaseManager
from aiolease.opentelemetry import metrics_hook
from aiolease.testing import local_dynamodb


async def main() -> None:
    """Hold one lease with the metrics hook installed and print what was recorded."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    async with local_dynamodb() as env:
        client = env.client
        # --8<-- [start:otel]
        meter = provider.get_meter("my-service")  # omit: the global meter provider
        manager = LeaseManager(client, "leases", hooks=[metrics_hook(meter)])
        # --8<-- [end:otel]
        async with manager.lease("report:nightly", ttl=1.5):
            await anyio.sleep(1.2)  # heartbeats every ttl / 3

    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points = list(metric.data.data_points)
                print(f"{metric.name} ({metric.unit}): {len(points)} series")


anyio.run(main)
