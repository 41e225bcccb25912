"""What a CLI user reads when something is wrong: one line of advice, the right exit code."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import SCRIPT, aiolease, environment
from support import Backend

pytestmark = pytest.mark.backends("ddblocal")


def bare(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the script with exactly `env` (plus PATH), and an empty AWS config."""
    config = tmp_path / "aws-config"
    config.write_text("")
    full = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(config),
        "AWS_EC2_METADATA_DISABLED": "true",
        **env,
    }
    return subprocess.run(
        [SCRIPT, *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
            "no AWS region is configured: pass --region (or set AWS_REGION)",
        ),
        ({"AWS_REGION": "us-east-1", "AWS_PROFILE": "nosuch"}, "the AWS profile 'nosuch' is not"),
        ({"AWS_REGION": "us-east-1"}, "no AWS credentials were found: set AWS_ACCESS_KEY_ID"),
        (
            {
                "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": "127.0.0.1:8000",
                "AWS_ACCESS_KEY_ID": "a",
                "AWS_SECRET_ACCESS_KEY": "b",
            },
            (
                "--endpoint-url '127.0.0.1:8000' is not a URL: give the scheme, "
                "e.g. http://127.0.0.1:8000"
            ),
        ),
        (
            {"AWS_REGION": "us east 1", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
            "cannot make a DynamoDB client: ",
        ),
    ],
    ids=["no-region", "unknown-profile", "no-credentials", "endpoint-without-scheme", "bad-region"],
)
def test_configuration_errors_are_one_line_of_advice_and_exit_78(
    env: dict[str, str], expected: str, tmp_path: Path, backend: Backend
) -> None:
    if "AWS_ENDPOINT_URL" not in env and "AWS_PROFILE" not in env:
        env = {**env, "AWS_ENDPOINT_URL": str(backend.endpoint_url)}
    result = bare("show", "some-key", env=env, tmp_path=tmp_path)
    assert result.returncode == 78, result.stderr
    assert result.stderr.startswith(f"aiolease: {expected}")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path, backend: Backend) -> None:
    env = {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": str(backend.endpoint_url)}
    result = bare("--debug", "show", "some-key", env=env, tmp_path=tmp_path)
    assert result.returncode == 78
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("aiolease: no AWS credentials")


@pytest.mark.parametrize(
    "args",
    [
        ["show", ""],
        ["show", "k" * 3000],
        ["release", "--force", "--yes", ""],
        ["run", "", "true"],
        ["run", "--ttl", "10", "--safety-margin", "20", "k", "true"],
    ],
    ids=["empty-key", "long-key", "empty-key-release", "empty-key-run", "margin-above-ttl"],
)
def test_bad_keys_and_margins_are_usage_errors(backend: Backend, args: list[str]) -> None:
    result = aiolease(backend, *args)
    assert result.returncode == 2, result.stderr
    assert "Usage:" in result.stderr
    assert "Traceback" not in result.stderr


def test_everything_after_the_key_is_the_command(
    backend: Backend, key: str, tmp_path: Path
) -> None:
    out = tmp_path / "args"
    script = f'echo "$@" > {out}'
    result = aiolease(backend, "run", key, "sh", "-c", script, "sh", "--ttl", "5")
    assert result.returncode == 0, result.stderr
    assert out.read_text().split() == ["--ttl", "5"]


def test_options_after_the_key_are_refused_with_advice(backend: Backend, key: str) -> None:
    result = aiolease(backend, "run", key, "--ttl", "5", "--", "true")
    assert result.returncode == 2
    assert "put aiolease's options before KEY" in result.stderr


def test_global_options_are_accepted_after_the_subcommand(backend: Backend) -> None:
    result = aiolease(backend, "ls", "--table", "no-such-table")
    assert result.returncode == 78
    assert "the lease table 'no-such-table' does not exist" in result.stderr
    assert "aiolease create-table --table no-such-table" in result.stderr
    assert "LeaseManager" not in result.stderr  # CLI advice, not Python
    assert result.stderr.count("create-table") == 1  # said once


@pytest.fixture
def not_dynamodb() -> Iterator[str]:
    """A loopback web server that answers every request with a 404 HTML page."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b"<!DOCTYPE html><html><body><h1>404 Not Found</h1>" + b"x" * 2000
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/wrong/path"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_wrong_endpoint_path_does_not_dump_its_page(backend: Backend, not_dynamodb: str) -> None:
    env = {**environment(backend), "AWS_ENDPOINT_URL": not_dynamodb}
    result = subprocess.run(
        [SCRIPT, "show", "k"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode in {69, 78}, result.stderr
    assert "<html" not in result.stderr.lower()
    assert "xxxx" not in result.stderr
    assert "HTTP 404" in result.stderr
    assert "not DynamoDB" in result.stderr
    assert result.stderr.count("\n") == 1
