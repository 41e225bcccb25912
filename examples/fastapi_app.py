"""A FastAPI app whose routes each hold a distributed lease while they run.

Run it (uvicorn is not an aiolease dependency)::

    pip install "aiolease[fastapi,testing]" uvicorn
    uvicorn fastapi_app:app --app-dir examples

    curl -X POST localhost:8000/reports/42/regenerate  # 200 with the fence, or 409
    curl localhost:8000/leases/report:42               # who holds the key now

Without ``AIOLEASE_TABLE`` it starts an embedded DynamoDB (moto) in the process, so it
works out of the box. Set ``AIOLEASE_TABLE`` to an existing lease table (see
``LeaseManager.create_table()``) and configure AWS the usual way to use DynamoDB itself.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from aiobotocore.session import get_session
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from aiolease import Lease, LeaseLostError, LeaseManager
from aiolease.fastapi import lease_dependency, lease_manager_lifespan
from aiolease.testing import local_dynamodb

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


@asynccontextmanager
async def open_store() -> AsyncIterator[tuple[DynamoDBClient, str]]:
    """A DynamoDB client and the lease table's name: real DynamoDB or embedded."""
    table = os.environ.get("AIOLEASE_TABLE")
    if table is None:
        async with local_dynamodb() as env:
            yield env.client, env.table
        return
    async with get_session().create_client("dynamodb") as client:
        yield client, table


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open one client and run one manager for the app's lifetime."""
    async with open_store() as (client, table):
        manager = LeaseManager(client, table, default_ttl=30, poll_interval=0.2)
        async with lease_manager_lifespan(
            app, manager
        ):  # stored on app.state.lease_manager
            yield


app = FastAPI(title="aiolease example", lifespan=lifespan)


@app.exception_handler(LeaseLostError)
async def lease_lost(_request: Request, error: LeaseLostError) -> JSONResponse:
    """A route that finds its lease gone (ensure_held) stops and answers 503."""
    return JSONResponse(
        {"detail": str(error)}, status_code=503, headers={"Retry-After": "1"}
    )


# One regeneration per report across every instance of the app; others get 409.
ReportLease = Annotated[Lease, lease_dependency("report:{report_id}", ttl=30)]


@app.post("/reports/{report_id}/regenerate")
async def regenerate(report_id: str, lease: ReportLease) -> dict[str, Any]:
    """Rebuild one report while holding its lease."""
    await anyio.sleep(0.05)  # the slow part: render the report
    lease.ensure_held()  # right before the side effect
    # Store the report with the fence, so the store can refuse a stale holder's write.
    return {"report_id": report_id, "fence": lease.fence}


# A job that callers queue up for: wait up to 10 s for the lease, else 503.
NightlyLease = Annotated[
    Lease, lease_dependency("nightly", timeout=10, status_code=503)
]


@app.post("/nightly")
async def nightly(lease: NightlyLease) -> dict[str, Any]:
    """Run the nightly job, one caller at a time."""
    lease.ensure_held()
    return {"job": "nightly", "fence": lease.fence}


@app.get("/leases/{key}")
async def who_holds(key: str, request: Request) -> dict[str, Any]:
    """Who holds `key` now, as stored."""
    manager: LeaseManager = request.app.state.lease_manager
    info = await manager.get(key)
    if info is None:
        return {"held": False}
    return {
        "held": True,
        "owner": info.owner,
        "fence": info.fence,
        "expires_at": info.expires_at.isoformat(),
    }
