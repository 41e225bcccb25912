"""The ``aiolease`` console script, run for real in subprocesses against DynamoDB Local."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
from cli_support import aiolease, finish, running, wait_for_line
from support import Backend

pytestmark = pytest.mark.backends("ddblocal")

# The child writes its start and end on the shared monotonic clock, one line each.
RECORDER = (
    "import os, sys, time; "
    "f = open(sys.argv[1], 'a'); f.write(f'start {time.monotonic()} {os.environ[\"AIOLEASE_FENCE\"]}\\n'); f.flush(); "  # noqa: E501
    "time.sleep(float(sys.argv[2])); "
    "f.write(f'end {time.monotonic()}\\n'); f.close()"
)


def test_every_command_has_help(backend: Backend) -> None:
    for command in ([], ["run"], ["ls"], ["show"], ["release"], ["create-table"]):
        result = aiolease(backend, *command, "--help")
        assert result.returncode == 0, result.stderr
        assert "Usage:" in result.stdout


def test_create_table_is_idempotent(backend: Backend) -> None:
    table = f"cli-{uuid.uuid4().hex[:8]}"
    first = aiolease(backend, "create-table", table=table)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    second = aiolease(backend, "create-table", table=table)
    assert second.returncode == 0, second.stderr
    assert "already exists" in second.stdout


def test_run_passes_the_exit_code_and_the_lease_to_the_child(
    backend: Backend, key: str, tmp_path: Path
) -> None:
    out = tmp_path / "env"
    result = aiolease(
        backend,
        "run",
        key,
        "--",
        "sh",
        "-c",
        f'echo "$AIOLEASE_KEY $AIOLEASE_FENCE $AIOLEASE_OWNER" > {out}; exit 7',
    )
    assert result.returncode == 7, result.stderr
    seen_key, fence, owner = out.read_text().split()
    assert seen_key == key
    assert int(fence) > 0
    assert owner
    assert aiolease(backend, "show", key).returncode == 1  # released on exit


def test_a_held_lease_exits_with_the_held_code_and_names_the_holder(
    backend: Backend, key: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    with running(
        backend, "run", key, "--", sys.executable, "-c", RECORDER, str(log), "30"
    ) as holder:
        wait_for_line(log, "start")
        busy = aiolease(backend, "run", "--no-wait", key, "--", "true")
        assert busy.returncode == 75
        assert "is held by" in busy.stderr
        custom = aiolease(backend, "run", "--no-wait", "--held-exit-code", "3", key, "--", "true")
        assert custom.returncode == 3
        timed = aiolease(backend, "run", "--timeout", "0.5", key, "--", "true")
        assert timed.returncode == 75

        shown = aiolease(backend, "show", "--json", key)
        assert shown.returncode == 0
        info = json.loads(shown.stdout)
        assert info["key"] == key
        assert info["remaining"] > 0
        listed = aiolease(backend, "ls", "--json", key)
        assert [json.loads(line)["key"] for line in listed.stdout.splitlines()] == [key]
        table = aiolease(backend, "ls", key)
        assert key in table.stdout
        holder.send_signal(signal.SIGTERM)  # forwarded to the child
        code, _ = finish(holder, timeout=30)
    assert code == 128 + signal.SIGTERM


def test_concurrent_runs_on_one_key_never_overlap(
    backend: Backend, key: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    command = ["run", "--ttl", "5", key, "--", sys.executable, "-c", RECORDER, str(log), "0.2"]
    with contextlib.ExitStack() as stack:
        runners = [stack.enter_context(running(backend, *command)) for _ in range(4)]
        for runner in runners:
            code, err = finish(runner, timeout=60)
            assert code == 0, err
    lines = log.read_text().splitlines()
    assert len(lines) == 8
    # Starts and ends strictly alternate: no child started while another ran.
    kinds = [line.split()[0] for line in lines]
    assert kinds == ["start", "end"] * 4
    fences = [int(line.split()[2]) for line in lines if line.startswith("start")]
    assert fences == sorted(set(fences))


def test_a_lost_lease_stops_the_child_and_exits_with_the_lost_code(
    backend: Backend, key: str, tmp_path: Path
) -> None:
    marker = tmp_path / "term"
    child = (
        f'trap "echo TERM > {marker}; exit 9" TERM; echo ready > {marker}.ready; sleep 60 & wait'
    )
    with running(backend, "run", "--ttl", "3", key, "--", "sh", "-c", child) as runner:
        wait_for_line(Path(f"{marker}.ready"), "ready")
        broken = aiolease(backend, "release", key, "--force", "--yes")
        assert broken.returncode == 0
        assert "broke lease" in broken.stdout
        # Found at the next heartbeat (ttl/3), then SIGTERM.
        code, err = finish(runner, timeout=3 * 3)
    assert code == 76
    assert marker.read_text().strip() == "TERM"
    assert err.count("was lost") == 1, err  # said once, by the CLI
    assert "Traceback" not in err


def test_a_child_that_ignores_sigterm_is_killed_before_the_lease_could_pass_on(
    backend: Backend, key: str, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    child = f'trap "" TERM; echo ready > {ready}; while true; do sleep 0.1; done'
    ttl, margin, grace = 3.0, 0.6, 0.3
    options = ["--ttl", str(ttl), "--safety-margin", str(margin), "--grace", str(grace)]
    with running(backend, "run", *options, key, "--", "sh", "-c", child) as runner:
        wait_for_line(ready, "ready")
        broken_at = time.monotonic()
        aiolease(backend, "release", key, "--force", "--yes")
        # Found at the next heartbeat; SIGTERM is ignored, so SIGKILL follows after grace.
        code, _ = finish(runner, timeout=ttl * 3)
        assert code == 76
        assert time.monotonic() - broken_at < ttl / 3 + grace + 2.0


def test_grace_must_fit_inside_the_safety_margin(backend: Backend, key: str) -> None:
    result = aiolease(backend, "run", "--grace", "2", "--safety-margin", "1", key, "--", "true")
    assert result.returncode == 2
    assert "--grace" in result.stderr


def test_the_child_dies_with_the_runner(backend: Backend, key: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    # `exec`: the shell becomes the command; the guarantee covers the child, not processes
    # the child starts itself (documented).
    command = f"echo $$ > {pid_file}; exec sleep 60"
    with running(backend, "run", key, "--", "sh", "-c", command) as r:
        wait_for_line(pid_file, "")
        time.sleep(0.2)
        child = int(pid_file.read_text())
        r.kill()  # SIGKILL: no chance to clean up
        r.wait(timeout=10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
        assert time.monotonic() < deadline, "the child outlived its runner"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_release_needs_force_and_confirmation(backend: Backend, key: str) -> None:
    assert aiolease(backend, "release", key).returncode == 2  # --force is required
    refused = aiolease(backend, "release", key, "--force")  # no stdin: not confirmed
    assert refused.returncode == 1
    assert (
        aiolease(backend, "release", key, "--force", "--yes")
        .stdout.strip()
        .endswith("was not held")
    )


def test_a_missing_table_says_to_create_it(backend: Backend, key: str) -> None:
    result = aiolease(backend, "show", key, table="no-such-table")
    assert result.returncode == 78
    assert "aiolease create-table" in result.stderr


def test_an_unreachable_endpoint_says_what_to_check(backend: Backend, key: str) -> None:
    env_backend = Backend(
        name="x", endpoint_url="http://127.0.0.1:9", client=backend.client, table=backend.table
    )
    result = aiolease(env_backend, "show", key, timeout=120)
    assert result.returncode == 69
    assert "endpoint" in result.stderr


async def test_a_command_that_finished_by_itself_keeps_its_exit_code_when_the_lease_ends(
    backend: Backend, tmp_path: Path
) -> None:
    """The command exits on its own; only then does the lease end (here: the host is seen
    to have been suspended, deterministically, once the command has finished). `run` must
    report the command's own exit code, not "stopped": a retrying wrapper would run a job
    again that has completed."""
    from aiolease import LeaseManager  # noqa: PLC0415
    from aiolease.cli._run import run_under_lease  # noqa: PLC0415

    done = tmp_path / "done"

    def suspend_clock() -> float:
        slept = 3600.0 if done.exists() else 0.0  # the lease is over once the command is
        return time.monotonic() + slept

    manager = LeaseManager(backend.client, backend.table, suspend_clock=suspend_clock)
    command = [sys.executable, "-c", f"open({str(done)!r}, 'w').close(); raise SystemExit(3)"]
    code = await run_under_lease(
        manager, f"test:cli:{uuid.uuid4().hex[:8]}", command, ttl=30, timeout=0, grace=0.5
    )
    assert code == 3
