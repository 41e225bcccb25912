"""The FastAPI guide's app: routes that each hold a distributed lease while they run.

The app reads the standard AWS configuration. ``main()`` points that configuration at
an embedded DynamoDB and sends requests in process, so
``python docs/examples/fastapi_guide.py`` runs anywhere (needs
``aiolease[fastapi,testing]`` and httpx).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
import httpx

# --8<-- [start:imports]
from aiobotocore.session import get_session
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from aiolease import Lease, LeaseLostError, LeaseManager
from aiolease.fastapi import lease_dependency, lease_manager_lifespan

# --8<-- [end:imports]
from aiolease.testing import local_dynamodb

reports: dict[str, int] = {}  # report id -> fence of the last write


async def store_report(report_id: str, *, fence: int) -> None:
    """The protected resource: keeps the fence of the write in force."""
    reports[report_id] = max(fence, reports.get(report_id, 0))


# --8<-- [start:lifespan]
@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open one DynamoDB client and run one manager for the app's lifetime."""
    async with (
        get_session().create_client("dynamodb") as client,
        lease_manager_lifespan(app, LeaseManager(client, "leases")),
    ):
        yield


app = FastAPI(lifespan=lifespan)
# --8<-- [end:lifespan]


# --8<-- [start:route]
ReportLease = Annotated[Lease, lease_dependency("report:{report_id}", ttl=30)]


@app.post("/reports/{report_id}/regenerate")
async def regenerate(report_id: str, lease: ReportLease) -> dict[str, int]:
    """Rebuild one report; one request at a time across every instance of the app."""
    lease.ensure_held()  # right before the side effect
    await store_report(report_id, fence=lease.fence)
    return {"fence": lease.fence}
    # --8<-- [end:route]


# --8<-- [start:lost]
@app.exception_handler(LeaseLostError)
async def lease_lost(_request: Request, error: LeaseLostError) -> JSONResponse:
    """A route that found its lease gone stops and answers 503."""
    return JSONResponse({"detail": str(error)}, status_code=503)
    # --8<-- [end:lost]


ExportLease = Annotated[Lease, lease_dependency("export:{name}", ttl=1.5)]


@app.post("/exports/{name}")
async def export(name: str, lease: ExportLease) -> dict[str, str]:
    """A long route: it checks its lease before each step."""
    # --8<-- [start:long-route]
    for _ in range(10):
        lease.ensure_held()  # raises LeaseLostError once the lease is lost
        await anyio.sleep(0.3)  # one step of the work
    # --8<-- [end:long-route]
    return {"exported": name}


async def main() -> None:
    """Serve a few requests in process against an embedded DynamoDB."""
    async with local_dynamodb() as env:
        # The app uses the standard AWS configuration: point it at the embedded server.
        os.environ.update(
            AWS_ENDPOINT_URL=env.endpoint_url,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",  # noqa: S106 - the emulator takes any
        )
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
            anyio.create_task_group() as tg,
        ):
            response = await client.post("/reports/42/regenerate")
            print(f"regenerate: {response.status_code} {response.json()}")

            other = env.manager(owner="another-instance")
            async with other.lease("report:42"):
                response = await client.post("/reports/42/regenerate")
                status, retry_after = (
                    response.status_code,
                    response.headers["Retry-After"],
                )
                print(f"while held elsewhere: {status}, Retry-After {retry_after}")

            async def break_soon() -> None:  # an operator breaks the export's lease
                await anyio.sleep(0.2)
                await other.break_lease("export:monthly")

            tg.start_soon(break_soon)
            response = await client.post("/exports/monthly")
            print(f"export whose lease was broken: {response.status_code}")


anyio.run(main)
