"""Checks of what users pass in: keys, data, names, callables and leases.

Every check raises `LeaseConfigError` with what was wrong and how to fix it, before any
request is sent. The manager, the patterns and the FastAPI integration share them, so a
key is refused the same way wherever it enters.
"""

from __future__ import annotations

import json
from typing import Final

from ._exceptions import LeaseConfigError
from ._lease import Lease
from .store import DataUpdate, _Unset

__all__ = [
    "MAX_DATA_BYTES",
    "MAX_KEY_BYTES",
    "check_callable",
    "check_key",
    "check_lease",
    "encode_data",
    "utf8_size",
]

MAX_KEY_BYTES: Final = 2048  # DynamoDB's limit for a partition key value
# An acquire keeps the data it found beside its own until the grant is settled (for its
# undo): two copies and the lease attributes must fit DynamoDB's 400 KB item limit.
MAX_DATA_BYTES: Final = 170_000


def check_key(key: object, *, name: str = "key") -> str:
    """`key` if it is a usable lease key: a non-empty string of at most 2048 UTF-8 bytes."""
    if not isinstance(key, str):
        raise LeaseConfigError(f"{name} must be a string, got {type(key).__name__} {key!r}")
    if not key:
        raise LeaseConfigError(f"{name} must not be empty")
    size = utf8_size(key, name=name)
    if size > MAX_KEY_BYTES:
        raise LeaseConfigError(
            f"{name} is {size} bytes in UTF-8; DynamoDB allows at most {MAX_KEY_BYTES}: "
            "use a shorter key (for example a hash of the long one)"
        )
    return key


def utf8_size(text: str, *, name: str) -> int:
    """The size of `text` in UTF-8, or `LeaseConfigError` if it is not valid Unicode.

    A lone surrogate (a code point U+D800 to U+DFFF on its own, left by decoding bytes with
    ``surrogateescape``) has no UTF-8 form: DynamoDB rejects it or maps different such
    strings to one, so it is refused here.
    """
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise LeaseConfigError(
            f"{name} is not valid Unicode text: it has a lone surrogate "
            f"{text[error.start]!r} at index {error.start}; DynamoDB stores text as UTF-8, "
            "so pass real characters (decode bytes strictly, or with errors='replace')"
        ) from None


def check_callable(**given: object) -> None:
    """Raise `LeaseConfigError` unless every value given is callable."""
    for name, value in given.items():
        if not callable(value):
            raise LeaseConfigError(f"{name} must be callable, got {value!r}")


def check_lease(lease: object) -> None:
    """Raise `LeaseConfigError` unless `lease` is a `Lease`."""
    if not isinstance(lease, Lease):
        raise LeaseConfigError(
            f"expected a Lease from acquire() or lease(), got {type(lease).__name__}"
        )


def encode_data(data: object) -> DataUpdate:
    """A lease's data as the JSON text to store (None clears it, UNSET keeps it)."""
    if isinstance(data, _Unset) or data is None:
        return data
    try:
        text = json.dumps(data, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise LeaseConfigError(
            f"data must be JSON-serialisable (no NaN or infinity): {error}"
        ) from error
    size = utf8_size(text, name="data")
    if size > MAX_DATA_BYTES:
        raise LeaseConfigError(
            f"data is {size} bytes as JSON; at most {MAX_DATA_BYTES} are allowed (an acquire "
            "keeps the previous data beside it until the grant is settled, and both must fit "
            "in one DynamoDB item): store a reference (for example an S3 key) instead"
        )
    return text
