"""A lease per request, as a FastAPI dependency (``pip install 'aiolease[fastapi]'``).

::

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with session.create_client("dynamodb") as client:
            async with lease_manager_lifespan(app, LeaseManager(client, "leases")):
                yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/reports/{report_id}")
    async def regenerate(
        report_id: str, lease: Annotated[Lease, lease_dependency("report:{report_id}")]
    ) -> dict[str, int]:
        return {"fence": lease.fence}

The lease is taken before the route runs and released before the response is sent. A
held key answers 409 (or the status you choose) with a ``Retry-After`` header. Leases
are heartbeated by the running manager (``async with manager``), not by the request, so
the route is not cancelled if the lease is lost: call ``lease.ensure_held()`` before
each side effect and pass ``lease.fence`` to the protected resource. See docs/fastapi.md.
"""

from __future__ import annotations

import inspect
import logging
import math
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

try:
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.routing import APIRoute
    from pydantic import BaseModel
except ImportError as error:  # pragma: no cover - exercised with fastapi hidden
    raise ImportError(
        "aiolease.fastapi needs FastAPI 0.121 or newer: install 'aiolease[fastapi]'"
    ) from error

from ._durations import ACQUIRE_TIMEOUT, TTL, Duration, optional_seconds
from ._exceptions import LeaseConfigError, LeaseHeldError, LeaseStoreError
from ._lease import Lease
from ._manager import LeaseManager, check_manager
from ._validation import MAX_KEY_BYTES, check_key, utf8_size
from .store import UNSET

__all__ = [
    "DEFAULT_STATE_NAME",
    "KeySource",
    "LeaseHeldBody",
    "document_lease_responses",
    "lease_dependency",
    "lease_manager_lifespan",
]

logger = logging.getLogger("aiolease.fastapi")

DEFAULT_STATE_NAME: Final = "lease_manager"
"""Where `lease_manager_lifespan` stores the manager and `lease_dependency` looks for it."""

KeySource = str | Callable[[Request], str | Awaitable[str]]
"""A key template such as ``"report:{report_id}"``, or a function of the request."""

ManagerSource = LeaseManager | Callable[[Request], LeaseManager] | str

_HTTP_ERROR_MIN: Final = 400
_HTTP_ERROR_MAX: Final = 599


class LeaseHeldBody(BaseModel):
    """The body of the answer when a route's lease is held elsewhere."""

    detail: str


def document_lease_responses(app: FastAPI) -> None:
    """Document the held-lease answer in the OpenAPI schema of `app`'s lease routes.

    Each route that uses `lease_dependency` gets its status, body (`LeaseHeldBody`) and
    ``Retry-After`` header. `lease_manager_lifespan` does this when the app starts; call
    it yourself if you provide the manager otherwise, after the routes are added.
    """
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for status_code in _lease_statuses(route.dependant):
            route.responses.setdefault(
                status_code,
                {
                    # The schema inline: FastAPI reads a "model" only as the route is made.
                    "content": {"application/json": {"schema": LeaseHeldBody.model_json_schema()}},
                    "description": "The route's lease is held elsewhere: retry after "
                    "the seconds in Retry-After.",
                    "headers": {
                        "Retry-After": {
                            "description": "Seconds to wait before retrying.",
                            "schema": {"type": "integer"},
                        }
                    },
                },
            )
    app.openapi_schema = None  # built again, with them, when next asked for


def _lease_statuses(dependant: Any) -> set[int]:
    """The held-lease statuses of the lease dependencies under `dependant`."""
    found: set[int] = set()
    for sub in dependant.dependencies:
        status = getattr(sub.call, "_aiolease_status", None)
        if isinstance(status, int):
            found.add(status)
        found |= _lease_statuses(sub)
    return found


@asynccontextmanager
async def lease_manager_lifespan(
    app: FastAPI, manager: LeaseManager, *, name: str = DEFAULT_STATE_NAME
) -> AsyncIterator[LeaseManager]:
    """Run `manager` for the app's lifetime and store it on ``app.state.<name>``.

    Use it inside the app's ``lifespan``, within the block that opens the DynamoDB client.
    While it runs, leases taken by `lease_dependency` are heartbeated by the manager; on
    exit any lease still held is released and ``app.state.<name>`` is removed. It also
    puts the held-lease answer into the app's OpenAPI schema (`document_lease_responses`).
    """
    check_manager(manager)
    document_lease_responses(app)
    async with manager:
        setattr(app.state, name, manager)
        try:
            yield manager
        finally:
            delattr(app.state, name)


def lease_dependency(
    key: KeySource,
    *,
    ttl: Duration | None = None,
    timeout: Duration | None = 0,
    status_code: int = 409,
    data: Any = UNSET,
    manager: ManagerSource = DEFAULT_STATE_NAME,
) -> Any:
    """A FastAPI dependency that holds the lease on `key` while the route runs.

    Use it as ``lease: Annotated[Lease, lease_dependency(...)]``; the route gets the
    `Lease` (with its ``fence``). It is a ``Depends(..., scope="function")``, so the lease
    is released right after the route returns or raises, before the response is sent.

    - `key`: a template filled from the request's path parameters and, for names that
      are not path parameters, its query parameters (``"report:{report_id}"``; a missing
      parameter answers 422; write ``{{`` and ``}}`` for literal braces), or a function
      that takes the `Request` and returns the key (or an awaitable of it).
    - `ttl`: the lease duration (the manager's ``default_ttl`` when None).
    - `timeout`: 0 (the default) tries once; a number of seconds waits up to that long;
      None waits until the key is free.
    - `status_code`: the answer when the key stays held (409; 423 or 503 also fit), with
      ``Retry-After`` set to when a retry is worth it: the manager's ``poll_interval``
      (at least 1 s), or sooner if a takeover could be possible sooner, rounded up. A
      holder usually finishes long before its lease could be taken over, so clients
      that wait the worst case (the ttl) would wait for nothing.
    - `data`: JSON data stored with the lease, or a function of the `Request` returning it.
    - `manager`: the `LeaseManager`, a function of the `Request` returning it, or the name
      of the attribute of ``request.state`` or ``app.state`` holding it (default
      ``"lease_manager"``, as set by `lease_manager_lifespan`). The manager must be
      running (``async with manager``) so that the lease is heartbeated.

    The route is not cancelled if the lease is lost: `Lease.ensure_held()` raises
    `LeaseLostError` then. Store failures raise `LeaseStoreError` from the dependency.
    """
    build_key = _key_builder(key)
    ttl_seconds = optional_seconds(ttl, name="ttl", bounds=TTL)
    limit = optional_seconds(timeout, name="timeout", bounds=ACQUIRE_TIMEOUT)
    if (
        isinstance(status_code, bool)
        or not isinstance(status_code, int)
        or not _HTTP_ERROR_MIN <= status_code <= _HTTP_ERROR_MAX
    ):
        raise LeaseConfigError(f"status_code must be an HTTP error status, got {status_code!r}")
    find_manager = _manager_finder(manager)

    async def hold_lease(request: Request) -> AsyncIterator[Lease]:
        running = find_manager(request)
        lease_key = await build_key(request)
        payload = data(request) if callable(data) else data
        try:
            lease = await running.acquire(lease_key, ttl=ttl_seconds, timeout=limit, data=payload)
        except LeaseHeldError as held:
            takeover = max(0, math.ceil(held.retry_after))
            retry_after = min(takeover, max(1, math.ceil(running.poll_interval)))
            raise HTTPException(
                status_code,
                detail=(
                    f"lease {lease_key!r} is held elsewhere; retry after {retry_after} s "
                    f"(a takeover could take up to {takeover} s)"
                ),
                headers={"Retry-After": str(retry_after)},
            ) from held
        try:
            yield lease
        finally:
            await _release(running, lease)

    hold_lease._aiolease_status = status_code  # type: ignore[attr-defined]  # for the schema
    return Depends(hold_lease, scope="function")


async def _release(manager: LeaseManager, lease: Lease) -> None:
    try:
        released = await manager.release(lease)
    except LeaseStoreError as error:
        logger.warning("could not release %r after the request: %s", lease.key, error)
        return
    if not released:
        logger.warning(
            "lease %r (fence %d) was no longer held when the request finished (%s)",
            lease.key,
            lease.fence,
            f"lost: {lease.lost.reason}" if lease.lost else "released elsewhere",
        )


def _key_builder(key: KeySource) -> Callable[[Request], Awaitable[str]]:
    if isinstance(key, str):
        return _template_builder(key)
    if not callable(key):
        raise LeaseConfigError(
            f"key must be a template string or a function of the request, got {key!r}"
        )

    async def from_function(request: Request) -> str:
        result = key(request)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, str):
            raise LeaseConfigError(
                f"the key function must return a string, got {type(result).__name__}"
            )
        return result

    return from_function


def _template_builder(template: str) -> Callable[[Request], Awaitable[str]]:
    try:
        fields = [
            field for _, field, _, _ in string.Formatter().parse(template) if field is not None
        ]
    except ValueError as error:
        raise LeaseConfigError(f"key template {template!r} is malformed: {error}") from error
    bad = [field for field in fields if not field.isidentifier()]
    if bad:
        raise LeaseConfigError(
            f"key template {template!r} may only use parameter names in braces, got {bad}"
        )
    if not fields:
        if not template or utf8_size(template, name="key") > MAX_KEY_BYTES:
            raise LeaseConfigError(f"key must be 1 to {MAX_KEY_BYTES} bytes, got {template!r}")
        fixed = template.format()  # turns {{ and }} into braces

        async def fixed_key(_request: Request) -> str:
            return fixed

        return fixed_key

    async def from_template(request: Request) -> str:
        values: dict[str, Any] = dict(request.query_params)
        values.update(request.path_params)
        missing = sorted({field for field in fields if field not in values})
        if missing:
            raise HTTPException(422, detail=f"the lease key needs the parameters {missing}")
        result = template.format_map(values)
        try:
            return check_key(result, name="the lease key")
        except LeaseConfigError as error:
            raise HTTPException(422, detail=str(error)) from None

    return from_template


def _manager_finder(source: ManagerSource) -> Callable[[Request], LeaseManager]:
    if isinstance(source, LeaseManager):
        return lambda _request: _running(source)
    if isinstance(source, str):

        def from_state(request: Request) -> LeaseManager:
            for state in (request.state, request.app.state):
                found = getattr(state, source, None)
                if isinstance(found, LeaseManager):
                    return _running(found)
            raise RuntimeError(
                f"no LeaseManager at request.state.{source} or app.state.{source}: run one "
                "with lease_manager_lifespan(app, manager) in the app's lifespan, or pass "
                "manager= to lease_dependency()"
            )

        return from_state
    if callable(source):

        def from_function(request: Request) -> LeaseManager:
            found = source(request)
            if not isinstance(found, LeaseManager):
                raise LeaseConfigError(
                    f"the manager function must return a LeaseManager, got {type(found).__name__}"
                )
            return _running(found)

        return from_function
    raise LeaseConfigError(
        f"manager must be a LeaseManager, a function of the request or a state name, got {source!r}"
    )


def _running(manager: LeaseManager) -> LeaseManager:
    if not manager.running:
        raise RuntimeError(
            f"{manager!r} is not running, so its leases would not be heartbeated: enter it "
            "with `async with manager:` (lease_manager_lifespan does) in the app's lifespan"
        )
    return manager
