"""OpenTelemetry metrics for aiolease, as an event hook (needs ``opentelemetry-api``).

::

    from aiolease.opentelemetry import metrics_hook

    manager = LeaseManager(client, "leases", hooks=[metrics_hook()])

Counts every `LeaseEvent` in ``aiolease.lease.events`` (attributes ``aiolease.event`` and,
where they apply, ``aiolease.lost_reason`` and ``aiolease.released``) and records
durations in seconds: ``aiolease.lease.acquire.duration`` (call to grant),
``aiolease.lease.wait.duration``, ``aiolease.lease.refresh.duration`` and
``aiolease.lease.held.duration``. Lease keys are not used as attributes (their
cardinality is the application's); pass ``key_attribute=True`` to add them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._events import LeaseEvent
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

__all__ = ["metrics_hook"]

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
    try:
        from opentelemetry import metrics  # noqa: PLC0415  (an optional dependency)
    except ImportError as error:
        raise ImportError(
            "aiolease.opentelemetry needs the opentelemetry-api package: "
            "pip install opentelemetry-api"
        ) from error
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
