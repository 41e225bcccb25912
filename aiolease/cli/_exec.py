"""Trampoline for child processes: tie the child's life to its parent, then exec it.

Used by ``aiolease run`` for its command and by :mod:`aiolease.testing` for emulators.

Runs as ``python -m aiolease.cli._exec COMMAND...`` in the child process, so the parent
never needs an unsafe ``preexec_fn``. On Linux it asks the kernel to SIGKILL this process
when the parent dies (``PR_SET_PDEATHSIG``), checks the parent did not die before that,
moves into a process group of its own, and replaces itself with the command.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(137)


def main() -> None:
    """Exec the command given on the command line, after arranging to die with the parent."""
    parent = int(os.environ.pop("AIOLEASE_PARENT_PID", os.getppid()))
    command = sys.argv[1:]
    if not command:
        sys.stderr.write("aiolease: no command to run\n")
        os._exit(127)
    _die_with_parent(parent)
    # A group of its own, so the parent can stop grandchildren too (a session leader,
    # started with start_new_session, already leads its group).
    with contextlib.suppress(PermissionError):
        os.setpgid(0, 0)
    try:
        os.execvp(command[0], command)  # noqa: S606
    except OSError as error:
        sys.stderr.write(f"aiolease: cannot run {command[0]!r}: {error.strerror}\n")
        os._exit(127 if isinstance(error, FileNotFoundError) else 126)


if __name__ == "__main__":
    main()
