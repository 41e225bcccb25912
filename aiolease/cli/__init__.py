"""The ``aiolease`` command (installed with the ``aiolease[cli]`` extra)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Entry point of the ``aiolease`` console script."""
    try:
        from ._app import cli  # noqa: PLC0415  (click is an optional dependency)
    except ImportError as error:
        sys.stderr.write(
            f"aiolease: the command line needs extra packages ({error.name} is missing); "
            "install them with: pip install 'aiolease[cli]'\n"
        )
        raise SystemExit(2) from None
    cli()
