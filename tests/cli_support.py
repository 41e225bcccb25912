"""Running the ``aiolease`` console script for real, in subprocesses."""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from support import Backend

SCRIPT = str(Path(sys.executable).with_name("aiolease"))


def environment(backend: Backend, table: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=str(backend.endpoint_url),
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="aiolease",
        AWS_SECRET_ACCESS_KEY="aiolease",  # noqa: S106  (a dummy for the emulator)
        AIOLEASE_TABLE=table or backend.table,
    )
    env.pop("AWS_PROFILE", None)
    return env


def aiolease(
    backend: Backend, *args: str, table: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args],
        env=environment(backend, table),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@contextlib.contextmanager
def running(backend: Backend, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A background ``aiolease`` process, killed (if need be) and reaped afterwards."""
    process = subprocess.Popen(
        [SCRIPT, *args],
        env=environment(backend),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def finish(process: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    """Wait for `process`; its exit code and standard error."""
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def wait_for_line(path: Path, prefix: str, timeout: float = 30) -> None:
    """Poll `path` until a line starting with `prefix` appears."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and any(x.startswith(prefix) for x in path.read_text().splitlines())):
        assert time.monotonic() < deadline, f"no {prefix!r} line in {path} after {timeout} s"
        time.sleep(0.05)


def read_stderr_until(process: subprocess.Popen[str], text: str, timeout: float) -> str:
    """Read `process`'s stderr until `text` appears; all read so far.

    Reads the pipe's file descriptor directly (no buffering in between), and fails the
    test after `timeout` seconds without `text`.
    """
    assert process.stderr is not None
    fd = process.stderr.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while text.encode() not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} on stderr within {timeout} s; got {seen!r}"
            if selector.select(left):
                chunk = os.read(fd, 65536)
                assert chunk, f"stderr closed before {text!r}; got {seen!r}"
                seen += chunk
    return seen.decode()
