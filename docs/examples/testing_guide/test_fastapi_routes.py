"""A FastAPI app under test: lifespan, a guarded route, and a second holder."""

# No `from __future__ import annotations`: FastAPI reads the route's annotations
# at runtime.

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
from fastapi import FastAPI

from aiolease import Lease, LeaseManager
from aiolease.fastapi import lease_dependency, lease_manager_lifespan
from aiolease.testing import local_dynamodb


# --8<-- [start:test]
def make_app(manager: LeaseManager) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with lease_manager_lifespan(app, manager):
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/reports/{report_id}/regenerate")
    async def regenerate(
        report_id: str, lease: Annotated[Lease, lease_dependency("report:{report_id}")]
    ) -> dict[str, str | int]:
        return {"report_id": report_id, "fence": lease.fence}

    return app


async def test_regenerate() -> None:
    async with local_dynamodb() as env:
        app = make_app(env.manager())
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            response = await client.post("/reports/42/regenerate")
            assert response.status_code == 200

            async with env.manager().lease("report:42"):  # another instance holds it
                response = await client.post("/reports/42/regenerate")
                assert response.status_code == 409
                assert int(response.headers["Retry-After"]) > 0
                # --8<-- [end:test]
