"""The runnable pattern examples under examples/ do what their docs say."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


async def test_example_isr_guard(capsys: pytest.CaptureFixture[str]) -> None:
    served: list[str] = await load_example("isr_guard").main()
    assert len(served) == 12
    regenerated = [line for line in served if "regenerated" in line]
    stale = [line for line in served if "served stale" in line]
    assert len(regenerated) == 4  # the winner's server: its four requests shared one run
    assert len({line.split(":")[0] for line in regenerated}) == 1
    assert len(stale) == 8
    assert "cache: Page(html='<new by" in capsys.readouterr().out


async def test_example_leader_election() -> None:
    terms: list[tuple[str, int]] = await load_example("leader_election").main()
    assert len(terms) >= 2
    assert terms[0][0] != terms[1][0]
    assert terms[0][1] < terms[1][1]


async def test_example_competing_consumers() -> None:
    module = load_example("competing_consumers")
    done_by: dict[str, str] = await module.main()
    assert sorted(done_by) == module.JOBS
