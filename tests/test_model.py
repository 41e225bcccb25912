"""Model checking the real lease code: every schedule of a scenario, on virtual time.

Each scenario runs the unchanged manager (acquire, lease blocks, heartbeats, refresh,
release, the undo) on a `MemoryStore`, with every store operation a choice point (see
``tests/model.py``). The search enumerates every schedule with at most a few faults and
checks mutual exclusion and fence growth on every step of every run.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import anyio
import pytest
from model import Report, World, explore, run_once
from mutants import mutant

import aiolease._acquiring
import aiolease._refreshing
import aiolease.testing._memory
from aiolease.store import Now
from aiolease.testing import MemoryStore
from aiolease.testing._choices import Choices, DivergedError
from aiolease.testing._virtual_time import DeadlockError, RealIOError, run_virtual

KEY = "job"
TTL = 2.0
OPTIONS = {
    "max_clock_skew": 0.5,
    "safety_margin": 0.1,  # small: the skew bound, not the margin, must keep them apart
    "poll_interval": 0.25,
    "backoff": 0.2,
    "release_timeout": 1.0,
}


def handover(world: World, *, offset: float = 0.0) -> Callable[[], Awaitable[None]]:
    """Two hosts, one key: A holds it across heartbeats; B waits for it, holds it, lets go.

    B's wall clock is `offset` seconds ahead of A's.
    """
    a = world.host("A")
    b = world.host("B", offset=offset)

    async def work() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: world.hold("A", a, KEY, ttl=TTL, hold=1.5 * TTL, timeout=5))

            async def later() -> None:
                await anyio.sleep(0.5)
                await world.hold("B", b, KEY, ttl=TTL, hold=0.5, timeout=4 * TTL)

            tg.start_soon(later)

    return work


def explained(report: Report) -> str:
    return "\n\n".join(
        f"{v.property} at {v.at:.3f}: {v.detail}\nschedule:\n{schedule}"
        for v, schedule in report.violations
    )


# -- the runtime --------------------------------------------------------------------------


def test_virtual_time_jumps_to_the_next_timer_in_order() -> None:
    seen: list[tuple[str, float]] = []

    async def main() -> None:
        start = anyio.current_time()

        async def after(name: str, delay: float) -> None:
            await anyio.sleep(delay)
            seen.append((name, anyio.current_time() - start))

        async with anyio.create_task_group() as tg:
            tg.start_soon(after, "late", 3600.0)
            tg.start_soon(after, "early", 0.5)

    run_virtual(main)
    assert seen == [("early", 0.5), ("late", 3600.0)]


def test_a_wait_nothing_can_end_is_a_deadlock_not_a_hang() -> None:
    async def main() -> None:
        await anyio.Event().wait()

    with pytest.raises(DeadlockError, match="no timer is due"):
        run_virtual(main)


def test_real_io_under_virtual_time_fails_at_once() -> None:
    async def main() -> None:
        left, right = socket.socketpair()
        with left, right:
            await asyncio.open_connection(sock=left)

    with pytest.raises(RealIOError, match="real I/O under virtual time"):
        run_virtual(main)


def test_a_thread_under_virtual_time_is_a_deadlock_not_a_hang() -> None:
    async def main() -> None:
        await anyio.to_thread.run_sync(lambda: None)

    with pytest.raises(DeadlockError, match="or for a thread"):
        run_virtual(main)


def test_a_run_is_a_pure_function_of_its_choices() -> None:
    first, _, _ = run_once(handover, [], max_faults=1, late=TTL + 0.5, options=OPTIONS)
    again, _, _ = run_once(handover, [], max_faults=1, late=TTL + 0.5, options=OPTIONS)
    assert [str(c) for c in first.made] == [str(c) for c in again.made]
    assert len(first.made) > 5


def test_a_prefix_that_does_not_fit_the_run_is_refused() -> None:
    choices = Choices([7], max_faults=1)

    async def main() -> None:
        choices.choose("op", ("answered", "refused"))

    with pytest.raises(DivergedError, match="not a pure function"):
        run_virtual(main)


# -- the search ---------------------------------------------------------------------------


def test_every_schedule_of_the_handover_keeps_exclusion_and_fences() -> None:
    report = explore(handover, max_faults=2, late=TTL + 0.5, options=OPTIONS)
    assert not report.violations, explained(report)
    # Every schedule with up to two faults among the run's store operations was run.
    assert report.schedules > 1000
    print(  # noqa: T201  (the figures, shown with -s)
        f"handover: {report.schedules} schedules, {report.operations} store operations "
        f"in {report.seconds:.1f} s"
    )


def test_the_handover_with_skewed_clocks_within_the_bound_is_safe() -> None:
    def skewed(world: World) -> Callable[[], Awaitable[None]]:
        return handover(world, offset=0.45)

    report = explore(skewed, max_faults=1, late=TTL + 0.5, options=OPTIONS)
    assert not report.violations, explained(report)


class WithoutTheSkewBound(MemoryStore):
    """A mutant: the wall-clock rule frees a lease at its expiry, not the skew later."""

    def _stale_ms(self, now: Now) -> int:
        return Now(now.wall, 0.0).stale_before_ms()


def test_the_search_finds_the_wall_clock_rule_without_its_skew_bound() -> None:
    def skewed(world: World) -> Callable[[], Awaitable[None]]:
        return handover(world, offset=0.45)

    report = explore(
        skewed,
        max_faults=1,
        late=TTL + 0.5,
        store=WithoutTheSkewBound,
        options=OPTIONS,
        stop_at_first=True,
    )
    assert report.violations, f"the mutant survived {report.schedules} schedules"
    violation, schedule = report.violations[0]
    assert violation.property == "mutual exclusion"
    assert schedule  # the run's faults, as a readable timeline


# -- the version rule: the only way in when the waiter's clock is far behind --------------


def version_rule(world: World) -> Callable[[], Awaitable[None]]:
    """The handover, with B's wall clock an hour behind: only the version rule lets B in."""
    return handover(world, offset=-3600.0)


def test_every_schedule_of_a_takeover_by_the_version_rule_is_safe() -> None:
    report = explore(version_rule, max_faults=2, late=TTL + 0.5, options=OPTIONS)
    assert not report.violations, explained(report)
    assert report.schedules > 1000


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        pytest.param(
            aiolease._acquiring,
            "state.watch.observe(found, now)",
            "state.watch.observe(found, read_at)",
            id="version-rule-timed-from-the-send",
        ),
        pytest.param(
            aiolease._refreshing,
            "    version = engine.new_token()",
            "    version = lease.token",
            id="refresh-reuses-its-version",
        ),
    ],
)
def test_the_search_finds_a_broken_version_rule(module: object, old: str, new: str) -> None:
    with mutant(module, old, new):  # type: ignore[arg-type]
        report = explore(
            version_rule, max_faults=2, late=TTL + 0.5, options=OPTIONS, stop_at_first=True
        )
    assert report.violations, f"the mutant survived {report.schedules} schedules"
    assert report.violations[0][0].property == "mutual exclusion"


# -- three hosts: a late release must not free the next holder's lease ---------------------


def cycle(world: World) -> Callable[[], Awaitable[None]]:
    """A holds briefly and lets go; B and C wait for the key in turn."""
    hosts = {name: world.host(name) for name in "ABC"}

    async def work() -> None:
        async with anyio.create_task_group() as tg:
            for name, start, hold in (("A", 0.0, 0.5), ("B", 0.2, 2.0), ("C", 0.4, 0.5)):

                async def run(name: str = name, start: float = start, hold: float = hold) -> None:
                    await anyio.sleep(start)
                    await world.hold(name, hosts[name], KEY, ttl=TTL, hold=hold, timeout=5 * TTL)

                tg.start_soon(run)

    return work


def test_every_schedule_of_three_hosts_in_turn_is_safe() -> None:
    report = explore(cycle, max_faults=1, late=TTL + 0.5, options=OPTIONS)
    assert not report.violations, explained(report)


def test_the_search_finds_a_release_without_its_token_condition() -> None:
    release_condition = (
        "            if item is None or item.token != token:\n"
        "                return Outcome(applied=False, record=self._maybe_record(item, now))\n"
        "            if isinstance(data, _Restore):"
    )
    with mutant(
        aiolease.testing._memory,
        release_condition,
        release_condition.replace("item is None or item.token != token", "item is None"),
    ):
        report = explore(cycle, max_faults=1, late=TTL + 0.5, options=OPTIONS, stop_at_first=True)
    assert report.violations, f"the mutant survived {report.schedules} schedules"
