"""``python -m aiolease.cli``: the same as the ``aiolease`` command."""

from . import main

main()
