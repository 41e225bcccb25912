"""OpenTelemetry metrics and spans from lease events."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from support import new_manager

from aiolease import LeaseLostError, LeaseTimeoutError
from aiolease.opentelemetry import metrics_hook, tracing_hook
from aiolease.store import Store


def collected(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


async def test_events_become_counters_and_duration_histograms(store: Store, key: str) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    hook = metrics_hook(provider.get_meter("test"))
    manager = new_manager(store, hooks=[hook])
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


async def test_keys_are_attributes_only_when_asked(store: Store, key: str) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    manager = new_manager(
        store,
        hooks=[metrics_hook(provider.get_meter("test"), key_attribute=True)],
    )
    lease = await manager.acquire(key, timeout=0)
    await manager.release(lease)
    points = collected(reader)["aiolease.lease.events"]
    assert {point.attributes["aiolease.key"] for point in points} == {key}
    assert {point.attributes.get("aiolease.released") for point in points} == {None, True}
    provider.shutdown()


def attributes(span: ReadableSpan) -> Mapping[str, Any]:
    assert span.attributes is not None
    return span.attributes


def parent_id(span: ReadableSpan) -> int:
    assert span.parent is not None
    return span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


def trace_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id


def seconds(span: ReadableSpan) -> tuple[float, float]:
    assert span.start_time is not None
    assert span.end_time is not None
    return span.start_time / 1e9, span.end_time / 1e9


def tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def test_acquire_hold_and_refresh_become_spans_in_the_callers_trace(
    store: Store, key: str
) -> None:
    provider, exporter = tracing()
    tracer = provider.get_tracer("test")
    manager = new_manager(store, hooks=[tracing_hook(tracer)])
    with tracer.start_as_current_span("request") as request:
        lease = await manager.acquire(key, timeout=0)
        await manager.refresh(lease)
        await manager.release(lease)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"request", "aiolease.acquire", "aiolease.lease", "aiolease.refresh"}
    assert {trace_id(span) for span in spans.values()} == {request.get_span_context().trace_id}
    for name in ("aiolease.acquire", "aiolease.lease"):
        assert parent_id(spans[name]) == request.get_span_context().span_id
    assert parent_id(spans["aiolease.refresh"]) == span_id(spans["aiolease.lease"])
    held = spans["aiolease.lease"]
    assert attributes(held)["aiolease.key"] == key
    assert attributes(held)["aiolease.fence"] == lease.fence
    assert attributes(held)["aiolease.released"] is True
    assert held.status.status_code is StatusCode.UNSET
    assert seconds(spans["aiolease.acquire"])[1] <= seconds(held)[0]
    provider.shutdown()


async def test_a_lost_lease_ends_its_span_with_an_error_naming_the_reason(
    store: Store, key: str
) -> None:
    provider, exporter = tracing()
    manager = new_manager(store, hooks=[tracing_hook(provider.get_tracer("test"))])
    operator = new_manager(store)
    with pytest.raises(LeaseLostError):
        async with manager.lease(key, ttl=0.6):
            await operator.break_lease(key)
            await anyio.sleep(0.6 * 3)
    (held,) = [span for span in exporter.get_finished_spans() if span.name == "aiolease.lease"]
    assert held.status.status_code is StatusCode.ERROR
    assert attributes(held)["aiolease.lost_reason"] == "released"
    provider.shutdown()


async def test_an_acquire_that_gives_up_is_an_error_span(store: Store, key: str) -> None:
    provider, exporter = tracing()
    holder = new_manager(store)
    manager = new_manager(store, hooks=[tracing_hook(provider.get_tracer("test"))])
    lease = await holder.acquire(key, timeout=0)
    with pytest.raises(LeaseTimeoutError):
        await manager.acquire(key, timeout=0.2)
    await holder.release(lease)
    (span,) = exporter.get_finished_spans()
    assert span.name == "aiolease.acquire"
    assert span.status.status_code is StatusCode.ERROR
    assert "timeout" in (span.status.description or "")
    start, end = seconds(span)
    assert end - start >= 0.2
    provider.shutdown()


def test_importing_without_opentelemetry_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "aiolease.opentelemetry")
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=r"install 'aiolease\[opentelemetry\]'"):
        importlib.import_module("aiolease.opentelemetry")
