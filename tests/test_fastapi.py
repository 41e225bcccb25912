"""aiolease.fastapi: a lease per request as a FastAPI dependency, driven through httpx."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at
# runtime, and they refer to local variables of the tests.

import importlib
import importlib.util
import math
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from support import POLL, SKEW, TTL, new_manager

from aiolease import Lease, LeaseConfigError, LeaseInfo, LeaseLostError, LeaseManager
from aiolease.fastapi import DEFAULT_STATE_NAME, lease_dependency, lease_manager_lifespan
from aiolease.store import Store

EXAMPLE = Path(__file__).parent.parent / "examples" / "fastapi_app.py"


def make_app(manager: LeaseManager) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with lease_manager_lifespan(app, manager):
            yield

    return FastAPI(lifespan=lifespan)


@asynccontextmanager
async def serve(
    app: FastAPI, *, asgi: ASGIApp | None = None, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and a client talking to it in process."""
    transport = httpx.ASGITransport(
        app=asgi or app,
        raise_app_exceptions=raise_app_exceptions,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        yield client


@pytest.fixture
def manager(store: Store) -> LeaseManager:
    return new_manager(store)


def lease_json(lease: Lease) -> dict[str, Any]:
    return {"key": lease.key, "fence": lease.fence, "held": lease.held, "data": lease.data}


# -- the route gets the lease; it is released before the response ------------------------


async def test_route_gets_the_lease_with_its_fence(manager: LeaseManager, key: str) -> None:
    app = make_app(manager)
    during: list[LeaseInfo | None] = []

    @app.post("/jobs/{job}")
    async def run(
        job: str, lease: Annotated[Lease, lease_dependency(key + ":{job}", data={"by": "api"})]
    ) -> dict[str, Any]:
        assert lease.key == f"{key}:{job}"
        during.append(await manager.get(lease.key))
        return lease_json(lease)

    async with serve(app) as client:
        first = await client.post("/jobs/a")
        second = await client.post("/jobs/a")
        assert await manager.get(f"{key}:a") is None
    assert first.status_code == 200
    body = first.json()
    assert body["key"] == f"{key}:a"
    assert body["held"] is True
    assert body["data"] == {"by": "api"}
    assert isinstance(body["fence"], int)
    assert body["fence"] > 0
    assert second.json()["fence"] > body["fence"]
    info = during[0]
    assert info is not None
    assert info.fence == body["fence"]
    assert info.owner == manager.owner
    assert info.data == {"by": "api"}


def response_start_probe(
    app: ASGIApp, manager: LeaseManager, key: str, seen: list[LeaseInfo | None]
) -> ASGIApp:
    """Wrap `app`: when the response starts, record who holds `key`."""

    async def probe(scope: Scope, receive: Receive, send: Send) -> None:
        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.append(await manager.get(key))
            await send(message)

        await app(scope, receive, watch)

    return probe


async def test_lease_is_released_before_the_response_is_sent(
    manager: LeaseManager, key: str
) -> None:
    app = make_app(manager)
    guard = lease_dependency(key)
    fences: list[int] = []

    @app.get("/function")
    async def function_scope(lease: Annotated[Lease, guard]) -> int:
        fences.append(lease.fence)
        return lease.fence

    # The control: the same dependency with scope="request" still holds the lease when
    # the response starts, so the probe does tell the two apart.
    @app.get("/request")
    async def request_scope(
        lease: Annotated[Lease, Depends(guard.dependency, scope="request")],
    ) -> int:
        return lease.fence

    seen: list[LeaseInfo | None] = []
    async with serve(app, asgi=response_start_probe(app, manager, key, seen)) as client:
        assert (await client.get("/function")).status_code == 200
        assert seen == [None]
        assert await manager.get(key) is None
        seen.clear()
        assert (await client.get("/request")).status_code == 200
        assert len(seen) == 1
        assert seen[0] is not None
        assert seen[0].fence > fences[0]
        assert await manager.get(key) is None  # released after the response


async def test_an_exception_in_the_route_still_releases(manager: LeaseManager, key: str) -> None:
    app = make_app(manager)

    @app.get("/crash")
    async def crash(lease: Annotated[Lease, lease_dependency(key)]) -> None:
        raise RuntimeError(f"boom at fence {lease.fence}")

    @app.get("/refuse")
    async def refuse(lease: Annotated[Lease, lease_dependency(key)]) -> None:
        raise HTTPException(418, detail=f"fence {lease.fence}")

    async with serve(app, raise_app_exceptions=False) as client:
        assert (await client.get("/crash")).status_code == 500
        assert await manager.get(key) is None
        refused = await client.get("/refuse")
        assert refused.status_code == 418
        assert await manager.get(key) is None
    async with serve(app) as client:
        with pytest.raises(RuntimeError, match="boom"):
            await client.get("/crash")
        assert await manager.get(key) is None


# -- contention -----------------------------------------------------------------------------


def holding_app(
    manager: LeaseManager, key: str, **options: Any
) -> tuple[FastAPI, anyio.Event, anyio.Event]:
    """An app whose /hold route keeps the lease until `release` is set."""
    app = make_app(manager)
    entered, release = anyio.Event(), anyio.Event()

    @app.post("/hold")
    async def hold(lease: Annotated[Lease, lease_dependency(key, **options)]) -> int:
        entered.set()
        await release.wait()
        return lease.fence

    return app, entered, release


@pytest.mark.backends("ddblocal")
async def test_a_held_key_answers_409_with_retry_after(manager: LeaseManager, key: str) -> None:
    app, entered, release = holding_app(manager, key)
    responses: list[httpx.Response] = []
    async with serve(app) as client, anyio.create_task_group() as tg:

        async def first() -> None:
            responses.append(await client.post("/hold"))

        tg.start_soon(first)
        await entered.wait()
        busy = await client.post("/hold")
        release.set()
    assert busy.status_code == 409
    retry_after = int(busy.headers["Retry-After"])
    assert 1 <= retry_after <= math.ceil(TTL + SKEW)
    assert key in busy.json()["detail"]
    assert [r.status_code for r in responses] == [200]


@pytest.mark.backends("ddblocal")
async def test_retry_after_is_the_poll_interval_not_the_worst_case_takeover(
    store: Store, key: str
) -> None:
    holder = new_manager(store, owner="holder")
    manager = new_manager(store, poll_interval=2.0)
    app = make_app(manager)

    @app.post("/hold")
    async def hold(_: Annotated[Lease, lease_dependency(key, ttl=30)]) -> None:
        raise AssertionError("the key is held elsewhere")

    async with serve(app) as client, holder.lease(key, ttl=30):
        busy = await client.post("/hold")
    assert busy.status_code == 409
    assert busy.headers["Retry-After"] == "2"  # not 30: holders usually finish sooner
    assert "retry after 2 s (a takeover could take up to " in busy.json()["detail"]


async def test_the_held_answer_is_in_the_openapi_schema_of_lease_routes(
    manager: LeaseManager, key: str
) -> None:
    app = make_app(manager)

    @app.post("/conflict")
    async def conflict(_: Annotated[Lease, lease_dependency(key)]) -> None: ...

    @app.post("/locked")
    async def locked(_: Annotated[Lease, lease_dependency(key, status_code=423)]) -> None: ...

    @app.get("/plain")
    async def plain() -> None: ...

    async with serve(app) as client:
        schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    held = paths["/conflict"]["post"]["responses"]["409"]
    body = held["content"]["application/json"]["schema"]
    assert body["title"] == "LeaseHeldBody"
    assert body["properties"]["detail"]["type"] == "string"
    assert body["required"] == ["detail"]
    assert held["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert "423" in paths["/locked"]["post"]["responses"]
    assert "409" not in paths["/locked"]["post"]["responses"]
    assert set(paths["/plain"]["get"]["responses"]) == {"200"}


async def test_concurrent_requests_for_one_key_admit_exactly_one(
    manager: LeaseManager, key: str
) -> None:
    app, _entered, release = holding_app(manager, key)
    statuses: list[int] = []
    contenders = 6
    async with serve(app) as client, anyio.create_task_group() as tg:

        async def request() -> None:
            response = await client.post("/hold")
            statuses.append(response.status_code)
            if response.status_code == 409:
                assert response.headers["Retry-After"].isdigit()
            if statuses.count(409) == contenders - 1:
                release.set()

        for _ in range(contenders):
            tg.start_soon(request)
    assert sorted(statuses) == [200] + [409] * (contenders - 1)
    assert await manager.get(key) is None


async def test_the_status_code_is_configurable(manager: LeaseManager, key: str) -> None:
    app = make_app(manager)

    @app.put("/locked")
    async def locked(lease: Annotated[Lease, lease_dependency(key, status_code=423)]) -> int:
        return lease.fence

    async with serve(app) as client:
        async with manager.lease(key):
            busy = await client.put("/locked")
        assert busy.status_code == 423
        assert "Retry-After" in busy.headers
        assert (await client.put("/locked")).status_code == 200


async def test_waiting_mode_gets_the_lease_once_it_is_released(
    manager: LeaseManager, key: str
) -> None:
    app = make_app(manager)
    holder: Lease | None = None

    @app.post("/wait")
    async def wait(lease: Annotated[Lease, lease_dependency(key, timeout=10)]) -> int:
        assert holder is not None
        # Granted only once the holder's release had started (its view says so from then
        # on): the write that frees the key comes after, and the grant after that.
        assert not holder.held
        return lease.fence

    async with serve(app) as client, anyio.create_task_group() as tg:
        holder = await manager.acquire(key)

        async def release_later() -> None:
            assert holder is not None
            await anyio.sleep(0.3)
            await manager.release(holder)

        tg.start_soon(release_later)
        started = anyio.current_time()
        waited = await client.post("/wait")
        elapsed = anyio.current_time() - started
    assert waited.status_code == 200
    assert holder is not None
    assert waited.json() > holder.fence
    assert 0.3 <= elapsed < 0.3 + 1 + 10 * POLL


async def test_waiting_mode_answers_409_after_its_timeout(manager: LeaseManager, key: str) -> None:
    app = make_app(manager)

    @app.post("/wait")
    async def wait(lease: Annotated[Lease, lease_dependency(key, timeout=0.4)]) -> int:
        return lease.fence  # pragma: no cover - never reached while held

    async with serve(app) as client, manager.lease(key):
        started = anyio.current_time()
        busy = await client.post("/wait")
        elapsed = anyio.current_time() - started
    assert busy.status_code == 409
    assert busy.headers["Retry-After"].isdigit()
    assert elapsed >= 0.4


# -- keys -------------------------------------------------------------------------------------


async def async_key(request: Request) -> str:
    return "async:" + request.headers["x-tenant"]


@pytest.mark.parametrize(
    ("source", "url", "expected"),
    [
        ("report:{report_id}", "/reports/7", "report:7"),
        ("report:{report_id}:{fmt}", "/reports/7?fmt=pdf", "report:7:pdf"),
        ("report:{fmt}", "/reports/7?fmt=csv&fmt=pdf", "report:pdf"),
        ("fixed:{{literal}}", "/reports/7", "fixed:{literal}"),
        (lambda request: "tenant:" + request.headers["x-tenant"], "/reports/7", "tenant:acme"),
        (async_key, "/reports/7", "async:acme"),
    ],
    ids=["path", "path-and-query", "last-query-value", "literal-braces", "callable", "async"],
)
async def test_key_from_parameters_or_a_callable(
    manager: LeaseManager,
    key: str,
    source: str | Callable[[Request], Any],
    url: str,
    expected: str,
) -> None:
    app = make_app(manager)
    if isinstance(source, str):
        source = key + ":" + source
        expected = key + ":" + expected

    @app.get("/reports/{report_id}")
    async def report(report_id: int, lease: Annotated[Lease, lease_dependency(source)]) -> str:
        assert report_id == 7
        return lease.key

    async with serve(app) as client:
        response = await client.get(url, headers={"x-tenant": "acme"})
    assert response.status_code == 200
    assert response.json() == expected


async def test_data_may_come_from_the_request(manager: LeaseManager, key: str) -> None:
    app = make_app(manager)
    tenant_data = lease_dependency(key, data=lambda request: {"tenant": request.headers["x-t"]})

    @app.get("/data")
    async def data(lease: Annotated[Lease, tenant_data]) -> Any:
        info = await manager.get(key)
        assert info is not None
        return [lease.data, info.data]

    async with serve(app) as client:
        response = await client.get("/data", headers={"x-t": "acme"})
    assert response.json() == [{"tenant": "acme"}, {"tenant": "acme"}]


async def test_a_missing_key_parameter_answers_422(manager: LeaseManager, key: str) -> None:
    app = make_app(manager)

    @app.get("/items")
    async def items(lease: Annotated[Lease, lease_dependency(key + ":{item}")]) -> str:
        return lease.key  # pragma: no cover - never reached

    async with serve(app) as client:
        response = await client.get("/items")
    assert response.status_code == 422
    assert "item" in response.json()["detail"]


# -- heartbeats and loss ----------------------------------------------------------------------


async def test_the_lease_is_heartbeated_through_a_long_request(
    manager: LeaseManager, key: str
) -> None:
    app = make_app(manager)
    expiries: list[float] = []

    @app.post("/long")
    async def long_request(lease: Annotated[Lease, lease_dependency(key)]) -> int:
        expiries.append(lease.expires_at.timestamp())
        await anyio.sleep(TTL * 2)  # longer than the lease lasts without refreshes
        lease.ensure_held()
        info = await manager.get(key)
        assert info is not None
        assert info.fence == lease.fence
        expiries.append(lease.expires_at.timestamp())
        return lease.fence

    async with serve(app) as client:
        response = await client.post("/long")
        assert await manager.get(key) is None
    assert response.status_code == 200
    assert expiries[1] > expiries[0] + TTL / 2


async def test_the_route_sees_a_lost_lease(manager: LeaseManager, key: str) -> None:
    app = make_app(manager)
    entered, broken = anyio.Event(), anyio.Event()

    @app.post("/work")
    async def work(lease: Annotated[Lease, lease_dependency(key)]) -> str:
        entered.set()
        await broken.wait()
        with anyio.fail_after(TTL * 2):
            error = await lease.wait_lost()  # the next heartbeat finds the lease gone
        with pytest.raises(LeaseLostError):
            lease.ensure_held()
        return error.reason

    async with serve(app) as client, anyio.create_task_group() as tg:
        results: list[httpx.Response] = []

        async def call() -> None:
            results.append(await client.post("/work"))

        tg.start_soon(call)
        await entered.wait()
        assert await manager.break_lease(key) is not None
        broken.set()
    assert results[0].status_code == 200
    assert results[0].json() == "released"


# -- finding the manager ----------------------------------------------------------------------


async def test_manager_can_be_passed_or_looked_up(manager: LeaseManager, key: str) -> None:
    app = make_app(manager)

    @app.get("/given")
    async def given(lease: Annotated[Lease, lease_dependency(key, manager=manager)]) -> str:
        return lease.key

    @app.get("/function")
    async def function(
        lease: Annotated[Lease, lease_dependency(key, manager=lambda r: r.app.state.lease_manager)],
    ) -> str:
        return lease.key

    async with serve(app) as client:
        assert getattr(app.state, DEFAULT_STATE_NAME) is manager
        assert (await client.get("/given")).json() == key
        assert (await client.get("/function")).json() == key
    assert not hasattr(app.state, DEFAULT_STATE_NAME)


@pytest.mark.backends("moto")
async def test_a_manager_that_is_not_running_is_refused(manager: LeaseManager, key: str) -> None:
    app = FastAPI()  # no lifespan: nothing runs the manager

    @app.get("/given")
    async def given(lease: Annotated[Lease, lease_dependency(key, manager=manager)]) -> str:
        return lease.key  # pragma: no cover - never reached

    @app.get("/state")
    async def state(lease: Annotated[Lease, lease_dependency(key)]) -> str:
        return lease.key  # pragma: no cover - never reached

    async with serve(app) as client:
        with pytest.raises(RuntimeError, match="not running"):
            await client.get("/given")
        with pytest.raises(RuntimeError, match="no LeaseManager"):
            await client.get("/state")
    assert await manager.get(key) is None


@pytest.mark.parametrize(
    ("args", "options", "match"),
    [
        (("a.{b.c}",), {}, "parameter names"),
        (("a.{}",), {}, "parameter names"),
        (("a.{b",), {}, "malformed"),
        (("",), {}, "1 to 2048 bytes"),
        ((42,), {}, "template string or a function"),
        (("k",), {"status_code": 200}, "HTTP error status"),
        (("k",), {"status_code": True}, "HTTP error status"),
        (("k",), {"ttl": 0}, "ttl"),
        (("k",), {"timeout": -1}, "timeout"),
        (("k",), {"manager": 3}, "manager must be"),
    ],
)
def test_bad_arguments_are_refused_up_front(
    args: tuple[Any, ...], options: dict[str, Any], match: str
) -> None:
    with pytest.raises(LeaseConfigError, match=match):
        lease_dependency(*args, **options)


def test_importing_without_fastapi_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "aiolease.fastapi")
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(ImportError, match=r"install 'aiolease\[fastapi\]'"):
        importlib.import_module("aiolease.fastapi")


# -- the example app --------------------------------------------------------------------------


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("aiolease_example_fastapi_app", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_example_app_runs_against_the_local_emulator() -> None:
    # The example starts its own embedded DynamoDB (aiolease.testing.local_dynamodb).
    example = load_example()
    app: FastAPI = example.app
    async with serve(app) as client, anyio.create_task_group() as tg:
        manager: LeaseManager = app.state.lease_manager
        first = await client.post("/reports/42/regenerate")
        assert first.status_code == 200
        assert first.json()["report_id"] == "42"
        assert first.json()["fence"] > 0
        assert (await client.get("/leases/report:42")).json() == {"held": False}

        async with manager.lease("report:42"):
            busy = await client.post("/reports/42/regenerate")
            assert busy.status_code == 409
            assert busy.headers["Retry-After"].isdigit()
            held = (await client.get("/leases/report:42")).json()
            assert held["held"] is True
            assert held["owner"] == manager.owner

        holder = await manager.acquire("nightly")
        tg.start_soon(release_after, manager, holder, 0.3)
        nightly = await client.post("/nightly")  # waits for the holder
        assert nightly.status_code == 200
        assert nightly.json()["fence"] > holder.fence


async def release_after(manager: LeaseManager, lease: Lease, delay: float) -> None:
    await anyio.sleep(delay)
    await manager.release(lease)
