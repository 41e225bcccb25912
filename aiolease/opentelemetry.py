"""OpenTelemetry metrics and traces for aiolease, as event hooks (need ``opentelemetry-api``).

::

    from aiolease.opentelemetry import metrics_hook, tracing_hook

    manager = LeaseManager(client, "leases", hooks=[metrics_hook(), tracing_hook()])

`metrics_hook` counts every `LeaseEvent` in ``aiolease.lease.events`` (attributes
``aiolease.event`` and, where they apply, ``aiolease.lost_reason`` and
``aiolease.released``) and records durations in seconds:
``aiolease.lease.acquire.duration`` (call to grant), ``aiolease.lease.wait.duration``,
``aiolease.lease.refresh.duration`` and ``aiolease.lease.held.duration``. Lease keys are
not used as metric attributes (their cardinality is the application's); pass
``key_attribute=True`` to add them.

`tracing_hook` makes spans: ``aiolease.acquire`` from the acquire call to the grant (or
to the timeout, with an error status), in the trace of the code that acquired;
``aiolease.lease`` from the grant to the release or the loss (an error status naming
the reason), with an event for each failed refresh; and ``aiolease.refresh`` for each
refresh, as a child of its lease's span. Spans carry ``aiolease.key``,
``aiolease.owner`` and ``aiolease.fence``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

try:
    import opentelemetry  # noqa: F401  (an optional dependency: fail on import, with the fix)
except ImportError as error:
    raise ImportError(
        "aiolease.opentelemetry needs OpenTelemetry's API: install 'aiolease[opentelemetry]'"
    ) from error

from ._events import LeaseEvent
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import Meter
    from opentelemetry.trace import Span, Tracer

__all__ = ["metrics_hook", "tracing_hook"]

_DURATIONS = {
    "acquired": ("aiolease.lease.acquire.duration", "From the acquire call to the grant."),
    "waited": ("aiolease.lease.wait.duration", "How long a contended acquire waited."),
    "refreshed": ("aiolease.lease.refresh.duration", "One refresh, retries included."),
    "released": ("aiolease.lease.held.duration", "How long a lease was held."),
}


def metrics_hook(
    meter: Meter | None = None, *, key_attribute: bool = False
) -> Callable[[LeaseEvent], None]:
    """Return a hook that records lease events as OpenTelemetry metrics on `meter`.

    Without a `meter`, one is taken from the global meter provider, so nothing is
    exported until the application configures OpenTelemetry.
    """
    from opentelemetry import metrics  # noqa: PLC0415  (an optional dependency)

    meter = meter or metrics.get_meter("aiolease", __version__)
    events = meter.create_counter(
        "aiolease.lease.events", unit="{event}", description="Lease events, by kind."
    )
    durations = {
        kind: meter.create_histogram(name, unit="s", description=description)
        for kind, (name, description) in _DURATIONS.items()
    }

    def record(event: LeaseEvent) -> None:
        attributes: dict[str, str | bool] = {"aiolease.event": event.kind}
        if key_attribute:
            attributes["aiolease.key"] = event.key
        if event.reason is not None:
            attributes["aiolease.lost_reason" if event.kind == "lost" else "aiolease.outcome"] = (
                event.reason
            )
        if event.released is not None:
            attributes["aiolease.released"] = event.released
        events.add(1, attributes)
        histogram = durations.get(event.kind)
        if histogram is not None and event.duration is not None:
            histogram.record(event.duration, attributes)

    return record


def tracing_hook(tracer: Tracer | None = None) -> Callable[[LeaseEvent], None]:
    """Return a hook that records acquires, held leases and refreshes as spans of `tracer`.

    Without a `tracer`, one is taken from the global tracer provider, so nothing is
    exported until the application configures OpenTelemetry. A lease's span stays open
    while it is held; the hook keeps one entry per held lease.
    """
    return _Spans(tracer).record


class _Spans:
    """The spans of one `tracing_hook`: one open span per held lease."""

    def __init__(self, tracer: Tracer | None) -> None:
        from opentelemetry import trace  # noqa: PLC0415  (an optional dependency)

        self._tracer = tracer or trace.get_tracer("aiolease", __version__)
        self._held: dict[tuple[str, int | None], Span] = {}
        self._error = trace.StatusCode.ERROR
        self._in_context = trace.set_span_in_context

    def record(self, event: LeaseEvent) -> None:
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event, time.time_ns())

    def _closed_span(
        self,
        name: str,
        event: LeaseEvent,
        end: int,
        *,
        context: Context | None = None,
        error: str | None = None,
    ) -> None:
        """A span that ended at `end` and lasted the event's duration."""
        start = end - round((event.duration or 0.0) * 1e9)
        span = self._tracer.start_span(
            name, context=context, start_time=start, attributes=_span_attributes(event)
        )
        if error is not None:
            span.set_status(self._error, error)
        span.end(end_time=end)

    def _on_acquired(self, event: LeaseEvent, now: int) -> None:
        self._closed_span("aiolease.acquire", event, now)
        self._held[event.key, event.fence] = self._tracer.start_span(
            "aiolease.lease", start_time=now, attributes=_span_attributes(event)
        )

    def _on_waited(self, event: LeaseEvent, now: int) -> None:
        if event.reason == "acquired":
            return  # the acquired event's span covers it
        self._closed_span("aiolease.acquire", event, now, error=f"gave up: {event.reason}")

    def _on_refreshed(self, event: LeaseEvent, now: int) -> None:
        lease = self._held.get((event.key, event.fence))
        if lease is not None:
            context = self._in_context(lease)
            self._closed_span("aiolease.refresh", event, now, context=context)

    def _on_refresh_failed(self, event: LeaseEvent, now: int) -> None:
        lease = self._held.get((event.key, event.fence))
        if lease is not None:
            details = {
                "exception.type": type(event.error).__name__,
                "exception.message": str(event.error),
            }
            lease.add_event("aiolease.refresh_failed", details, timestamp=now)

    def _on_lost(self, event: LeaseEvent, now: int) -> None:
        lease = self._held.pop((event.key, event.fence), None)
        if lease is not None:
            lease.set_attribute("aiolease.lost_reason", event.reason or "")
            lease.set_status(self._error, f"lost: {event.reason}")
            lease.end(end_time=now)

    def _on_released(self, event: LeaseEvent, now: int) -> None:
        lease = self._held.pop((event.key, event.fence), None)
        if lease is not None:
            lease.set_attribute("aiolease.released", bool(event.released))
            lease.end(end_time=now)


def _span_attributes(event: LeaseEvent) -> dict[str, str | int]:
    found: dict[str, str | int] = {"aiolease.key": event.key, "aiolease.owner": event.owner}
    if event.fence is not None:
        found["aiolease.fence"] = event.fence
    return found
