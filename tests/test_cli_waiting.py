"""``aiolease run`` while it waits: it says what for, gives up on an outage, obeys signals."""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from cli_support import aiolease, finish, read_stderr_until, running, wait_for_line
from support import Backend

pytestmark = pytest.mark.backends("ddblocal")

HOLD = "import sys, time; open(sys.argv[1], 'w').write('ready'); time.sleep(60)"


def closed_port() -> int:
    """A loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unreachable(backend: Backend) -> Backend:
    return Backend(
        name="unreachable",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        client=backend.client,
        table=backend.table,
    )


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_waiting_for_a_held_key_says_who_holds_it_and_a_signal_ends_the_wait(
    backend: Backend, key: str, tmp_path: Path, signum: int, code: int
) -> None:
    ready = tmp_path / "ready"
    with running(backend, "run", key, "--", sys.executable, "-c", HOLD, str(ready)) as holder:
        wait_for_line(ready, "ready")
        owner = json.loads(aiolease(backend, "show", "--json", key).stdout)["owner"]
        with running(backend, "run", key, "--", "true") as waiter:
            said = read_stderr_until(waiter, "may be taken over in", timeout=10)
            assert f"aiolease: waiting for {key!r}: held by {owner!r}, may be taken over in" in (
                said
            )
            waiter.send_signal(signum)
            exit_code, rest = finish(waiter, timeout=10)
        assert exit_code == code
        assert "Aborted" not in said + rest
        assert "Traceback" not in said + rest
        # The waiter left the holder's lease as it was.
        assert json.loads(aiolease(backend, "show", "--json", key).stdout)["owner"] == owner
        holder.send_signal(signal.SIGTERM)
        finish(holder, timeout=30)


def test_quiet_says_nothing_while_waiting(backend: Backend, key: str, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    with running(backend, "run", key, "--", sys.executable, "-c", HOLD, str(ready)) as holder:
        wait_for_line(ready, "ready")
        result = aiolease(backend, "--quiet", "run", "--timeout", "1", key, "--", "true")
        assert result.returncode == 75
        assert "waiting for" not in result.stderr
        assert result.stderr.count("\n") == 1  # the one line that says it gave up
        after = aiolease(backend, "run", "--quiet", "--timeout", "0.5", key, "--", "true")
        assert after.returncode == 75
        assert "waiting for" not in after.stderr
        holder.send_signal(signal.SIGTERM)
        finish(holder, timeout=30)


def test_an_unreachable_store_is_reported_at_once_and_given_up_on(
    backend: Backend, key: str
) -> None:
    outage = 3.0
    started = time.monotonic()
    with running(unreachable(backend), "run", "--outage-timeout", str(outage), key, "true") as r:
        said = read_stderr_until(r, "retrying", timeout=10)
        exit_code, rest = finish(r, timeout=60)
    elapsed = time.monotonic() - started
    assert exit_code == 69
    assert "aiolease: cannot reach DynamoDB table" in said
    assert "(EndpointConnectionError); retrying" in said
    assert f"gave up after {outage:g} s of failures" in rest
    assert "Traceback" not in said + rest
    # Past the outage timeout, within one more round of the client's own timeouts.
    assert outage <= elapsed < outage + 15


def test_the_outage_timeout_defaults_to_a_minute_and_never_means_forever(
    backend: Backend, key: str
) -> None:
    shown = aiolease(backend, "run", "--help")
    assert "--outage-timeout" in shown.stdout
    assert "[default: 60.0]" in shown.stdout
    with running(unreachable(backend), "run", "--outage-timeout", "never", key, "true") as r:
        said = read_stderr_until(r, "retrying", timeout=10)
        assert "giving up" not in said
        r.send_signal(signal.SIGINT)
        exit_code, rest = finish(r, timeout=10)
    assert exit_code == 130
    assert "Aborted" not in rest


def test_a_bad_outage_timeout_is_a_usage_error(backend: Backend, key: str) -> None:
    result = aiolease(backend, "run", "--outage-timeout", "soon", key, "true")
    assert result.returncode == 2
    assert "'soon' is not a number of seconds or 'never'" in result.stderr
