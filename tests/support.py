"""Helpers shared by the behaviour tests: managers tuned for fast tests, and clocks."""

from __future__ import annotations

from typing import Any

from aiolease import LeaseManager

# Short leases keep the suite quick; every timing bound in a test derives from these.
TTL = 1.5
SKEW = 0.2
POLL = 0.05


def new_manager(client: Any, table: str, **options: Any) -> LeaseManager:
    """A manager with short, test-friendly timings (overridable)."""
    settings: dict[str, Any] = {
        "default_ttl": TTL,
        "max_clock_skew": SKEW,
        "poll_interval": POLL,
        "backoff": 0.1,
        "release_timeout": 2.0,
    }
    settings.update(options)
    return LeaseManager(client, table, **settings)


class FakeClient:
    """A DynamoDB-shaped object that fails the test if any request is made."""

    class meta:  # noqa: N801  (mirrors botocore's client.meta)
        class service_model:  # noqa: N801
            service_name = "dynamodb"

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"no request should be made, but {name} was called")
