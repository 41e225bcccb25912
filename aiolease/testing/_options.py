"""The keyword options of a `LeaseManager`, as a type, for helpers that pass them on.

`LocalDynamoDB.manager(**options)` and the pytest plugin's ``aiolease_manager_options``
take them; typed this way, a misspelt or mistyped option is an error for mypy, as it is
when calling `LeaseManager` itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TypedDict

from aiolease import LeaseEvent

__all__ = ["ManagerOptions"]


class ManagerOptions(TypedDict, total=False):
    """`LeaseManager`'s keyword options (see its documentation for each)."""

    attribute_names: Mapping[str, str] | None
    sort_key: tuple[str, str] | None
    ttl_buffer: float | timedelta | None
    owner: str | None
    default_ttl: float | timedelta
    heartbeat_interval: float | timedelta | None
    safety_margin: float | timedelta | None
    max_clock_skew: float | timedelta
    poll_interval: float | timedelta
    backoff: float | timedelta
    release_timeout: float | timedelta
    wall_clock: Callable[[], float]
    suspend_clock: Callable[[], float]
    token_factory: Callable[[], str] | None
    rng: random.Random | None
    hooks: Iterable[Callable[[LeaseEvent], object]]
