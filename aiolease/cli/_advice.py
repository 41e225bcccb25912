"""What a CLI user reads when a command fails: one line that says what to do, and a code.

The library's messages advise Python callers (``await LeaseManager.create_table()``, "the
client given to LeaseManager"); here the same failures are told in the CLI's terms
(``aiolease create-table``, ``--endpoint-url``, ``--region``), once each.
"""

from __future__ import annotations

from typing import Final

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from aiolease._exceptions import LeaseConfigError, LeaseStoreError, TableNotFoundError
from aiolease.dynamodb import _THROTTLING as THROTTLING_CODES

from ._run import GaveUpError
from ._settings import ConfigurationError, Settings

__all__ = ["EXIT_CONFIG", "EXIT_UNAVAILABLE", "explain"]

EXIT_CONFIG: Final = 78  # sysexits' EX_CONFIG: options, credentials, a missing or wrong table
EXIT_UNAVAILABLE: Final = 69  # sysexits' EX_UNAVAILABLE: DynamoDB could not be reached


def explain(error: Exception, settings: Settings) -> tuple[str, int]:
    """The message for `error` with CLI advice, and the exit code."""
    if isinstance(error, ConfigurationError | LeaseConfigError):
        return str(error), EXIT_CONFIG
    if isinstance(error, TableNotFoundError):
        return (
            f"the lease table {error.table!r} does not exist at {settings.where}: create it "
            f"with `aiolease create-table {settings.flags}`, or check --table and --region"
        ), EXIT_CONFIG
    if isinstance(error, LeaseStoreError):
        message, code = _store_failure(error, settings)
        if isinstance(error, GaveUpError):
            message = f"gave up after {error.waited:g} s of failures: {message}"
        return message, code
    return str(error), 1


def _store_failure(error: LeaseStoreError, settings: Settings) -> tuple[str, int]:
    cause = error.__cause__
    if isinstance(cause, NoCredentialsError | PartialCredentialsError):
        return (
            "no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or choose a profile with --profile / AWS_PROFILE (a local emulator accepts any "
            "values)"
        ), EXIT_CONFIG
    if isinstance(cause, EndpointConnectionError | ConnectTimeoutError):
        return (
            f"cannot reach DynamoDB at {settings.where} ({type(cause).__name__}): check "
            "--endpoint-url / AWS_ENDPOINT_URL, --region and the network"
        ), EXIT_UNAVAILABLE
    if isinstance(cause, ClientError) and "is not DynamoDB" in str(error):
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "an error")
        return (
            f"{settings.where} answered HTTP {status} with a web page: it is not DynamoDB; "
            "check --endpoint-url / AWS_ENDPOINT_URL"
        ), EXIT_CONFIG
    message = str(error)
    code = cause.response.get("Error", {}).get("Code") if isinstance(cause, ClientError) else None
    if code in THROTTLING_CODES:
        return f"{message}; retry later, or raise the table's capacity", EXIT_UNAVAILABLE
    if cause is not None and not isinstance(cause, ClientError):
        # The library's advice is for Python callers: say what failed, in the CLI's terms.
        message = f"{error.operation} failed: {type(cause).__name__}: {cause}"
    if error.transient:
        return f"{message}; check --endpoint-url / AWS_ENDPOINT_URL and the network", (
            EXIT_UNAVAILABLE
        )
    return f"{message}; check the AWS credentials, --region and permissions", EXIT_CONFIG
