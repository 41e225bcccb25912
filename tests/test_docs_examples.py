"""Every Python example of the documentation is a program under docs/examples/, and runs.

The pages show their Python code as plain Markdown, each block marked with the
program (or section of it, under docs/examples/ or examples/) it is a copy of, and
``scripts/sync_docs.py`` keeps the copies exact; no Python block in docs/ is free text,
and the README's Python blocks are copies of sections of those programs too. Each
program runs here, and its output must match the console transcript shown next to it
in the docs (numbers aside), plus the checks below that say what the program
demonstrates. The tutorial and the quick start read the
standard AWS configuration and run against ``aiolease local``, as the tutorial says.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiobotocore.session import get_session

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import sync_docs  # the docs' own tool, from scripts/

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
TESTING_GUIDE = EXAMPLES / "testing_guide"
PROGRAMS = sorted(path.name for path in EXAMPLES.glob("*.py"))

PYTHON_LANGUAGES = {"python", "py", "python3", "py3", "pycon", "pyi"}
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
MARKED_FENCE = re.compile(
    r"^[ \t]*<!-- example: (?P<sources>[^>]+?) -->\n"
    r"(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
# A program by its path in the repository, or by its name (the tutorial shows it whole).
CONSOLE = re.compile(
    r"\A\$ python (?P<program>(?:docs/examples/)?\w+\.py)\n(?P<output>.*)\Z", re.DOTALL
)

# Programs whose lines come in an order set by the scheduler, not by the program.
UNORDERED = {"single_flight_guard.py", "singleton_job.py", "work_claiming.py"}


# -- reading the docs --------------------------------------------------------------------


def markdown_files() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def fences(text: str) -> Iterator[tuple[str, str]]:
    """Yield (language, body) of each fenced block, dedented as pymdownx reads them."""
    for match in FENCE.finditer(text):
        language = match["info"].strip().split(" ")[0].strip("{}. ")
        yield language, textwrap.dedent(match["body"])


def transcripts() -> dict[str, list[str]]:
    """The console transcripts in the docs, by program file name."""
    found: dict[str, list[str]] = {}
    for page in markdown_files():
        for language, body in fences(page.read_text()):
            if language == "console" and (match := CONSOLE.match(body)):
                name = Path(match["program"]).name
                assert name not in found, f"two transcripts of {name}"
                found[name] = match["output"].splitlines()
    return found


# -- the rule: no free Python in the docs --------------------------------------------------


def test_every_python_block_in_the_docs_is_a_marked_copy_of_an_example() -> None:
    checked = 0
    for page in markdown_files():
        text = page.read_text()
        marked = {m.start("info") for m in MARKED_FENCE.finditer(text)}
        for match in FENCE.finditer(text):
            language = match["info"].strip().split(" ")[0].strip("{}. ")
            if language not in PYTHON_LANGUAGES:
                continue
            assert match.start("info") in marked, (
                f"{page.relative_to(ROOT)} has a Python block that is no example's copy "
                f"(put the code in docs/examples/ and mark the block):\n{match['body']}"
            )
            checked += 1
        for match in MARKED_FENCE.finditer(text):
            for source in match["sources"].split(","):
                file = source.strip().partition(":")[0]
                assert file.startswith(("docs/examples/", "examples/", "docs/infra/", "docs/iam/"))
    assert checked >= 30


def test_the_code_shown_in_the_docs_is_the_code_of_the_examples() -> None:
    stale = [str(page.relative_to(ROOT)) for page in sync_docs.out_of_date()]
    assert not stale, f"out of date (run python scripts/sync_docs.py): {stale}"


def test_the_code_shown_fits_the_column_of_the_page() -> None:
    for page in [*markdown_files(), ROOT / "README.md"]:
        for language, body in fences(page.read_text()):
            if language in PYTHON_LANGUAGES:
                long = [line for line in body.splitlines() if len(line) > 88]
                assert not long, f"{page.relative_to(ROOT)}: lines over 88 columns: {long}"


def test_the_pages_read_as_plain_markdown() -> None:
    for page in markdown_files():
        text = page.read_text()
        assert "--8<--" not in text, f"{page.relative_to(ROOT)} has a snippet marker"
        assert not re.search(r"^(\?\?\?|===|!!!) ", text, re.MULTILINE), (
            f"{page.relative_to(ROOT)} uses a site-only block (admonition or tab)"
        )


def test_every_example_program_appears_in_the_docs() -> None:
    text = "\n".join(page.read_text() for page in markdown_files())
    for program in sorted(EXAMPLES.rglob("*.py")):
        if program.name == "__init__.py":
            continue
        assert str(program.relative_to(ROOT)) in text, f"{program.name} is shown nowhere"


def test_the_readme_python_blocks_are_marked_copies_of_the_examples() -> None:
    readme = (ROOT / "README.md").read_text()
    python = [body for language, body in fences(readme) if language in PYTHON_LANGUAGES]
    marked = [
        m["body"]
        for m in MARKED_FENCE.finditer(readme)
        if m["info"].strip().split(" ")[0] in PYTHON_LANGUAGES
    ]
    assert len(python) >= 5
    assert python == marked, "every README Python block is marked with its example"
    assert ROOT / "README.md" not in sync_docs.out_of_date()


def test_the_readme_transcripts_are_those_of_the_docs() -> None:
    shown = {body for page in markdown_files() for language, body in fences(page.read_text())}
    readme = (ROOT / "README.md").read_text()
    consoles = [body for language, body in fences(readme) if language == "console"]
    assert consoles
    for body in consoles:
        assert body in shown, f"README transcript is in no docs page (which are checked):\n{body}"


# -- the programs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws_environment() -> Iterator[dict[str, str]]:
    """Run ``aiolease local`` as the tutorial does; yield the environment it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", "aiolease.cli", "local", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    try:
        deadline = time.monotonic() + 60
        environment: dict[str, str] = {}
        for line in process.stdout:
            if line.startswith("export "):
                environment = dict(word.split("=", 1) for word in shlex.split(line)[1:])
                break
            assert time.monotonic() < deadline, "aiolease local did not start"
        assert set(environment) >= {"AWS_ENDPOINT_URL", "AWS_REGION", "AIOLEASE_TABLE"}
        yield environment
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def run(program: Path, environment: dict[str, str], *, cwd: Path = ROOT) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(program)],
        cwd=cwd,
        env=os.environ | environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # what a reader sees in a terminal, log lines included
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{program.name} failed:\n{result.stdout}"
    return result.stdout.splitlines()


def shape(lines: list[str]) -> list[str]:
    """Lines with numbers replaced, for comparing a run with a transcript."""
    return [re.sub(r"\d+(\.\d+)?", "N", line) for line in lines]


def numbers(line: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", line)]


@pytest.mark.parametrize("program", PROGRAMS)
def test_example_program(program: str, aws_environment: dict[str, str]) -> None:
    output = run(EXAMPLES / program, aws_environment)
    shown = transcripts().get(program)
    if shown is not None:
        if program in UNORDERED:
            assert Counter(shape(output)) == Counter(shape(shown))
        else:
            assert shape(output) == shape(shown)
    CHECKS[program](output)


# What each program demonstrates, beyond matching its transcript.


def check_quickstart(output: list[str]) -> None:
    # The region comes from the environment (aiolease local's, which made the table).
    assert output[0] == "table 'leases' in us-east-1: already there"
    assert output[1].startswith("wrote the report under lease 'report:nightly', fence ")
    assert output[2] == "released it: the next holder gets a higher fence"


def check_tutorial_1(output: list[str]) -> None:
    assert output[1].startswith("worker-a holds tutorial:report with fence ")
    assert numbers(output[1]) == numbers(output[3])[-1:]  # the table shows the same fence
    assert output[-1] == "after the block: None"


def check_tutorial_2(output: list[str]) -> None:
    first, second = numbers(output[0])[0], numbers(output[2])[-1]
    assert second == first + 1
    assert output[3:] == [
        "worker-b writes: True",
        "worker-a: lease.held is False",
        "worker-a writes: False",
        "worker-a releases: False",
        "worker-b releases: True",
    ]


def check_tutorial_3(output: list[str]) -> None:
    assert output[0].startswith("after 3 s: held True, refreshed ")
    assert numbers(output[0])[-1] >= 3
    assert "never printed" not in output
    assert "(reason: released)" in output[-1]


def check_tutorial_4(output: list[str]) -> None:
    assert output[1:4] == ["released: True", "released again: False", "held by anyone: False"]
    assert output[4] == "acquired again: fence +1, data {'step': 'done'}"


def check_api_tour(output: list[str]) -> None:
    assert output[0].startswith("held by worker-a; takeover possible in ")
    assert output[1] == "still held after 1 s"
    assert output[2].startswith("report:nightly worker-a ")
    assert output[3:] == ["True", "None", "broke the lease of worker-b"]


def check_fencing(output: list[str]) -> None:
    assert numbers(output[1])[0] < numbers(output[0])[0]
    assert output[-1] == "stored: by worker-b"


def check_hooks(output: list[str]) -> None:
    kinds = [line.split()[0] for line in output]
    assert output[0].startswith("INFO aiolease: waiting for 'report:nightly': held by 'other'")
    assert {"lease.acquired", "lease.contended", "lease.waited", "lease.released"} <= set(kinds)


def check_otel_metrics(output: list[str]) -> None:
    assert any(line.startswith("aiolease.lease.events ") for line in output)


def check_single_flight(output: list[str]) -> None:
    regenerated = [line for line in output if line.startswith("regenerated")]
    assert len(regenerated) == 3
    assert len(set(regenerated)) == 1  # one run, shared by the server's three requests
    assert output[-1] == "renders: 1, cache: <fresh /products>"


def check_election(output: list[str]) -> None:
    terms = [numbers(line)[-1] for line in output if "scheduling jobs" in line]
    leaders = [line.split(":")[0] for line in output if "scheduling jobs" in line]
    assert leaders == ["candidate-1", "candidate-2"]
    assert terms[1] > terms[0]


def check_work_claiming(output: list[str]) -> None:
    runs = [line for line in output if line.startswith("job:")]
    assert len(runs) == 6
    assert all(line.count("worker-") == 1 for line in runs)  # each job ran exactly once


def check_singleton(output: list[str]) -> None:
    ran = [line for line in output if "report for 2025-01-31" in line]
    assert len(ran) == 1


def check_fastapi(output: list[str]) -> None:
    assert output[0].startswith("regenerate: 200 ")
    assert output[1].startswith("while held elsewhere: 409, Retry-After ")
    assert output[-1] == "export whose lease was broken: 503"
    # The loss is logged once by the heartbeat, and the response's release says so briefly.
    assert sum("was lost: " in line for line in output) == 1


CHECKS = {
    "api_tour.py": check_api_tour,
    "election.py": check_election,
    "fastapi_guide.py": check_fastapi,
    "fencing.py": check_fencing,
    "hooks.py": check_hooks,
    "otel_metrics.py": check_otel_metrics,
    "quickstart.py": check_quickstart,
    "single_flight_guard.py": check_single_flight,
    "singleton_job.py": check_singleton,
    "tutorial_1_first_lease.py": check_tutorial_1,
    "tutorial_2_fencing.py": check_tutorial_2,
    "tutorial_3_heartbeat.py": check_tutorial_3,
    "tutorial_4_release.py": check_tutorial_4,
    "work_claiming.py": check_work_claiming,
}


def test_every_program_has_checks() -> None:
    assert sorted(CHECKS) == PROGRAMS


async def test_quickstart_left_a_fenced_item(aws_environment: dict[str, str]) -> None:
    run(EXAMPLES / "quickstart.py", aws_environment)
    async with get_session().create_client(
        "dynamodb",
        region_name=aws_environment["AWS_REGION"],  # the quick start's: the environment's
        endpoint_url=aws_environment["AWS_ENDPOINT_URL"],
        aws_access_key_id=aws_environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_environment["AWS_SECRET_ACCESS_KEY"],
    ) as client:
        item = await client.get_item(
            TableName="leases", Key={"pk": {"S": "report:nightly"}}, ConsistentRead=True
        )
    assert int(item["Item"]["fence"]["N"]) > 0  # it was granted...
    assert "token" not in item["Item"]  # ...and released


def test_the_testing_guide_project_passes() -> None:
    tests = sum(
        len(re.findall(r"^async def test_|^def test_", path.read_text(), re.MULTILINE))
        for path in TESTING_GUIDE.glob("test_*.py")
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=TESTING_GUIDE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"^{tests} passed in ", result.stdout, re.MULTILINE), result.stdout
