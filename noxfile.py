"""Development tasks: ``nox`` runs lint, typecheck and the tests (see ``scripts/test``)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
EMULATORS = ROOT / "tests" / "npm"  # the emulators' npm packages

nox.options.default_venv_backend = "venv"
# What scripts/test (and .ci/run) runs: the sessions tagged "main", and beside them those
# tagged "newer"; plain `nox` runs them all in turn.
nox.options.tags = ["main", "newer"]
# Reuse environments locally; CI always builds them from scratch.
nox.options.reuse_existing_virtualenvs = not os.environ.get("CI")
nox.options.error_on_external_run = True

# Python 3.11 if it is installed, otherwise the interpreter running nox.
PYTHON = "3.11" if shutil.which("python3.11") else f"{sys.version_info[0]}.{sys.version_info[1]}"

# Keep pip quiet and non-interactive; the machine's own pip configuration still applies.
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def dependency_group(name: str) -> list[str]:
    """Return the requirements of a PEP 735 dependency group, includes resolved."""
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    requirements: list[str] = []
    for entry in groups[name]:
        if isinstance(entry, str):
            requirements.append(entry)
        else:
            requirements.extend(dependency_group(entry["include-group"]))
    return list(dict.fromkeys(requirements))


def install(session: nox.Session, *args: str) -> None:
    session.install("--upgrade", *args, env=PIP_ENV)


def emulators_installed() -> bool:
    """Return whether node_modules holds every pinned package at its pinned version."""
    wanted = json.loads((EMULATORS / "package.json").read_text())["dependencies"]
    for package, version in wanted.items():
        manifest = EMULATORS / "node_modules" / package / "package.json"
        try:
            if json.loads(manifest.read_text()).get("version") != version:
                return False
        except (OSError, ValueError):
            return False
    return True


def install_emulators(session: nox.Session) -> None:
    if emulators_installed():
        session.log("npm packages for the emulators are already installed")
        return
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            session.error(f"`{tool}` is not on PATH; install Node.js 18+ to run the emulators")
    with session.chdir(EMULATORS):
        session.run(
            "npm",
            "install",
            "--no-package-lock",
            "--no-audit",
            "--no-fund",
            "--no-update-notifier",
            external=True,
        )


@nox.session(python=False)
def emulators(session: nox.Session) -> None:
    """Install the emulators' pinned npm packages into tests/npm (the test sessions do too)."""
    install_emulators(session)


# Needs the docs group's tools (cfn-lint, python-hcl2, jsonschema); the docs session runs it.
DOCS_ONLY_TESTS = ("--ignore=tests/test_docs_infra.py",)


def run_pytest(session: nox.Session, env: dict[str, str] | None = None) -> None:
    install_emulators(session)
    session.run("pytest", *DOCS_ONLY_TESTS, *session.posargs, env=env or {})


@nox.session(python=PYTHON, tags=["main"])
def tests(session: nox.Session) -> None:
    """Run the test suite with the newest aiobotocore 3.x."""
    install(session, ".", "aiobotocore>=3,<4", *dependency_group("tests"))
    run_pytest(session, {"AIOLEASE_TEST_CLIENT": "aiobotocore"})


# The other Pythons of the classifiers; scripts/test makes pyenv's installs of them visible.
NEWER_PYTHONS = ["3.12", "3.13"]


@nox.session(python=NEWER_PYTHONS, tags=["newer"])
def tests_newer_pythons(session: nox.Session) -> None:
    """Run the test suite on Python 3.12 and 3.13, against moto and DynamoDB Local.

    The whole matrix (aioboto3, dynalite) runs on 3.11; here each newer Python meets the
    fast stand-in and the reference. Extra arguments go to pytest.
    """
    install(session, ".", "aiobotocore>=3,<4", *dependency_group("tests"))
    run_pytest(
        session, {"AIOLEASE_TEST_CLIENT": "aiobotocore", "AIOLEASE_TEST_BACKENDS": "moto,ddblocal"}
    )


@nox.session(python=PYTHON, tags=["newer"])
def testing_extra(session: nox.Session) -> None:
    """Install aiolease[testing] alone into a fresh venv; run a user's tests with it.

    Prints how many packages and megabytes the extra brings.
    """
    session.run("python", "-m", "pip", "install", "--quiet", ".[testing]")
    report = (
        "import importlib.metadata as m, pathlib, sysconfig; "
        "site = pathlib.Path(sysconfig.get_paths()['purelib']); "
        "names = {d.metadata['Name'] for d in m.distributions()} - {'pip', 'setuptools'}; "
        "size = sum(p.stat().st_size for p in site.rglob('*') if p.is_file()); "
        "print(f'aiolease[testing] installs {len(names)} packages, {size / 1e6:.0f} MB')"
    )
    session.run("python", "-c", report)
    session.chdir("tests/user_project")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHON, tags=["newer"])
def packaging(session: nox.Session) -> None:
    """Build the sdist and wheel; check the sdist holds the repository, the wheel the package."""
    session.install("build")
    out = Path(session.create_tmp()) / "dist"
    session.run("python", "-m", "build", "--outdir", str(out), silent=True)
    tracked = session.run("git", "ls-files", silent=True, external=True)
    expected = {p for p in str(tracked).splitlines() if not p.startswith((".ci/", ".git"))}
    (sdist,) = out.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    if missing := sorted(expected - names):
        session.error(f"the sdist lacks {len(missing)} files of the repository: {missing}")
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = set(archive.namelist())
    wanted = {p for p in expected if p.startswith("aiolease/")}
    if missing := sorted(wanted - packaged):
        session.error(f"the wheel lacks {missing}")
    session.log(f"{sdist.name}: {len(names)} files; {wheel.name}: {len(packaged)} files")


@nox.session(python=PYTHON, tags=["main"])
def tests_aioboto3(session: nox.Session) -> None:
    """Run the test suite with clients made by aioboto3 (which pins aiobotocore 2.x)."""
    install(session, ".[aioboto3]", *dependency_group("tests"))
    run_pytest(session, {"AIOLEASE_TEST_CLIENT": "aioboto3"})


@nox.session(python=PYTHON)
def safety(session: nox.Session) -> None:
    """The long safety workload on DynamoDB Local; prints the figures of docs/reliability.md.

    Not run by default (about six minutes). Extra arguments go to tests/safety/run.py,
    e.g. ``nox -s safety -- --json safety.json --dir safety-logs``.
    """
    install(session, ".", "aiobotocore>=3,<4", *dependency_group("tests"))
    install_emulators(session)
    session.run(
        "python",
        "tests/safety/run.py",
        "--long",
        *session.posargs,
        env={"AIOLEASE_TEST_CLIENT": "aiobotocore"},
    )


@nox.session(python=PYTHON)
def differential(session: nox.Session) -> None:
    """MemoryStore against DynamoDB Local over many seeds (the suite runs six).

    Not run by default. ``nox -s differential -- 2000`` runs that many seeds (default 500);
    a diverging seed prints its sequence and the command that replays it.
    """
    install(session, ".", "aiobotocore>=3,<4", *dependency_group("tests"))
    install_emulators(session)
    runs = session.posargs[0] if session.posargs else "500"
    session.run(
        "pytest",
        "tests/test_differential.py",
        "-q",
        env={
            "AIOLEASE_TEST_BACKENDS": "ddblocal",
            "AIOLEASE_DIFFERENTIAL_FIRST_SEED": "1000",
            "AIOLEASE_DIFFERENTIAL_RUNS": runs,
            "AIOLEASE_TEST_CLIENT": "aiobotocore",
        },
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmarks of docs/performance.md on DynamoDB Local; prints one table of ratios.

    Not run by default (several minutes). Extra arguments go to benchmarks/run.py,
    e.g. ``nox -s bench -- --quick`` or ``nox -s bench -- --only overhead --json out.json``.
    """
    install(session, ".", "aiobotocore>=3,<4", *dependency_group("bench"))
    install_emulators(session)
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=PYTHON, tags=["main"])
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly into build/site and check its infra snippets."""
    install(session, ".", *dependency_group("docs"), *dependency_group("tests"))
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "build" / "site"))
    session.run("pytest", "tests/test_docs_infra.py", *session.posargs)


@nox.session(python=PYTHON, tags=["main"])
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    install(session, *dependency_group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON, tags=["main"])
def typecheck(session: nox.Session) -> None:
    """Type-check the library and the tests with mypy (configured in pyproject.toml)."""
    install(session, ".", *dependency_group("typing"))
    session.run("mypy")
