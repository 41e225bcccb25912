"""Where the CLI's leases live, how loud it is, and the client it makes for them.

The global options (``--table``, ``--endpoint-url``, ``--region``, ``--profile``,
``--quiet``, ``-v``, ``--debug``) are accepted before the subcommand and after it
(``aiolease ls --table x``); given after it, they win. The client is the CLI's own, so
the CLI picks its retries: two attempts with short timeouts, so that a store that
cannot be reached is reported within seconds and retried by aiolease, which says so.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, NoRegionError, ProfileNotFound

from aiolease._manager import LeaseManager

__all__ = ["CLIENT_CONFIG", "ConfigurationError", "Settings", "global_options", "pass_settings"]

F = TypeVar("F", bound=Callable[..., Any])

#: The retries and timeouts of the CLI's client: a failure reaches aiolease in seconds.
CLIENT_CONFIG: dict[str, Any] = {
    "retries": {"mode": "standard", "total_max_attempts": 2},
    "connect_timeout": 2,
    "read_timeout": 5,
}


class ConfigurationError(Exception):
    """The CLI cannot make a client from its options or environment (exit 78)."""


@dataclass(frozen=True)
class Settings:
    """Where the leases live, from flags, else the standard AWS environment."""

    table: str
    endpoint_url: str | None
    region: str | None
    profile: str | None
    quiet: bool = False
    verbose: int = 0
    debug: bool = False

    @asynccontextmanager
    async def manager(self, **options: Any) -> AsyncIterator[LeaseManager]:
        """A manager on a fresh client of the CLI's own, closed afterwards."""
        async with self.client() as client:
            yield LeaseManager(client, self.table, **options)

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Any]:
        """A DynamoDB client for these settings; `ConfigurationError` if none can be made."""
        async with AsyncExitStack() as stack:
            try:
                client = await stack.enter_async_context(
                    AioSession(profile=self.profile).create_client(
                        "dynamodb",
                        region_name=self.region,
                        endpoint_url=self.endpoint_url,
                        config=AioConfig(**CLIENT_CONFIG),
                    )
                )
            except ProfileNotFound:
                raise ConfigurationError(
                    f"the AWS profile {self.profile!r} is not in ~/.aws/config or "
                    "~/.aws/credentials: check --profile / AWS_PROFILE"
                ) from None
            except NoRegionError:
                raise ConfigurationError(
                    "no AWS region is configured: pass --region (or set AWS_REGION), "
                    "or configure one for the profile with `aws configure`"
                ) from None
            except ValueError as error:
                if "endpoint" not in str(error).lower() or isinstance(error, BotoCoreError):
                    raise ConfigurationError(
                        f"cannot make a DynamoDB client: {error}; check --region, "
                        "--endpoint-url and the AWS configuration files"
                    ) from None
                raise ConfigurationError(
                    f"--endpoint-url {self.endpoint_url!r} is not a URL: give the scheme, "
                    f"e.g. http://{self.endpoint_url}"
                ) from None
            except BotoCoreError as error:
                raise ConfigurationError(
                    f"cannot make a DynamoDB client: {error}; check --region, "
                    "--endpoint-url and the AWS configuration files"
                ) from None
            yield client

    @property
    def flags(self) -> str:
        """The flags that point a command at the same table, as a user would type them."""
        given = [("--table", self.table), ("--endpoint-url", self.endpoint_url)]
        given.append(("--region", self.region))
        return " ".join(f"{flag} {value}" for flag, value in given if value)

    @property
    def where(self) -> str:
        """Where the table is, for messages: the endpoint, or the region's DynamoDB."""
        if self.endpoint_url:
            return self.endpoint_url
        return f"DynamoDB in {self.region}" if self.region else "DynamoDB"

    def configure_logging(self) -> None:
        """Show aiolease's own log lines on stderr with ``-v`` (INFO) or ``-vv`` (DEBUG).

        Without ``-v``, warnings and errors still show, except those the CLI tells in its
        own words (a store failure while waiting, a lost lease): each is said once.
        """
        logger = logging.getLogger("aiolease")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("aiolease: %(levelname)s: %(message)s"))
        if self.verbose:
            logger.setLevel(logging.DEBUG if self.verbose > 1 else logging.INFO)
        else:
            handler.setLevel(logging.WARNING)
            handler.addFilter(_not_told_by_the_cli)
        logger.addHandler(handler)
        logger.propagate = False


def _not_told_by_the_cli(record: logging.LogRecord) -> bool:
    """Drop the log lines whose event the CLI reports itself."""
    return getattr(record, "aiolease_event", None) not in {"store_failed", "lost"}


_OPTIONS: dict[str, dict[str, Any]] = {
    "table": {
        "decls": ("--table",),
        "envvar": "AIOLEASE_TABLE",
        "default": "leases",
        "help": "Lease table [env AIOLEASE_TABLE].",
    },
    "endpoint_url": {
        "decls": ("--endpoint-url",),
        "envvar": "AWS_ENDPOINT_URL",
        "default": None,
        "help": "DynamoDB endpoint, e.g. a local emulator [env AWS_ENDPOINT_URL].",
    },
    "region": {
        "decls": ("--region",),
        "envvar": ["AWS_REGION", "AWS_DEFAULT_REGION"],
        "default": None,
        "help": "AWS region [env AWS_REGION, AWS_DEFAULT_REGION].",
    },
    "profile": {
        "decls": ("--profile",),
        "envvar": "AWS_PROFILE",
        "default": None,
        "help": "AWS profile [env AWS_PROFILE].",
    },
    "quiet": {
        "decls": ("--quiet", "-q"),
        "is_flag": True,
        "default": False,
        "help": "Print only errors: no waiting or retrying lines (for cron).",
    },
    "verbose": {
        "decls": ("--verbose", "-v"),
        "count": True,
        "default": 0,
        "help": "Show aiolease's log lines (-vv: debug lines too).",
    },
    "debug": {
        "decls": ("--debug",),
        "is_flag": True,
        "default": False,
        "help": "Show the traceback of an error.",
    },
}


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Keep a global option's value; one given after the subcommand overrides the group's."""
    given = ctx.find_root().meta.setdefault("aiolease.settings", {})
    if ctx.parent is None or value not in (None, False, 0):
        given[param.name] = value


def global_options(*, on_group: bool) -> Callable[[F], F]:
    """Add the global options to the group, or their repetition to a subcommand."""

    def add(function: F) -> F:
        for name, spec in reversed(_OPTIONS.items()):
            extra = {k: v for k, v in spec.items() if k not in {"decls", "envvar", "default"}}
            if not on_group:
                extra["help"] = "Same as the global option."
                extra["hidden"] = True
            function = click.option(
                *spec["decls"],
                name,
                envvar=spec.get("envvar") if on_group else None,
                default=spec["default"] if on_group else None if "count" not in spec else 0,
                expose_value=False,
                callback=_remember,
                show_default=on_group and spec["default"] not in (None, False, 0),
                **extra,
            )(function)
        return function

    return add


def pass_settings(function: F) -> F:
    """Pass the `Settings` made of the global options as the first argument."""

    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        given = ctx.find_root().meta.get("aiolease.settings", {})
        settings = Settings(**{name: given.get(name) for name in _OPTIONS})
        settings = Settings(
            table=settings.table or "leases",
            endpoint_url=settings.endpoint_url,
            region=settings.region,
            profile=settings.profile,
            quiet=bool(settings.quiet),
            verbose=int(settings.verbose or 0),
            debug=bool(settings.debug),
        )
        ctx.meta["aiolease.debug"] = settings.debug
        settings.configure_logging()
        return ctx.invoke(function, settings, *args, **kwargs)

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper  # type: ignore[return-value]
