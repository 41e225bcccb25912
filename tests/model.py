"""The model checker's parts: hosts on virtual time, the property checker, the search.

A scenario is a function that, given a `World`, starts its hosts' work; `explore()` runs
it once per schedule (depth first over the choice points, see
`aiolease.testing._choices`), each run on a fresh virtual-time loop, store and hosts, and
checks the properties all along each run. The real manager code runs, unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from aiolease import Lease, LeaseError, LeaseManager
from aiolease.store import Store
from aiolease.testing import FaultyStore, MemoryStore
from aiolease.testing._choices import Choices, store_choices
from aiolease.testing._virtual_time import START, run_virtual

EPOCH = 1_700_000_000.0  # the hosts' wall clocks start here (plus their offsets)


@dataclass
class Violation:
    """A property that did not hold, when, and the run's schedule."""

    property: str
    detail: str
    at: float


@dataclass
class Checker:
    """The properties: no two hosts hold a key at once by their own view; the fences of
    a key's grants strictly increase.

    Checked at every grant and at every choice point. That is exact for exclusion: a
    lease's `held` only turns false as time passes (a lost or lapsed lease is never
    revived), so an overlap can only begin when a grant is handed out.

    With clocks apart by more than the skew bound (`skew_beyond_bound`), the wall-clock
    rule may free a lease early: that is documented, so exclusion is then required only
    of grants the version rule made (design.md §4), whatever the clocks say.
    """

    skew_beyond_bound: bool = False
    leases: list[tuple[str, Lease, bool]] = field(default_factory=list)
    fences: dict[str, list[int]] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)

    def granted(self, host: str, lease: Lease, *, by_version: bool) -> None:
        """A host was handed `lease` (`by_version`: on a condition on a seen version)."""
        self.leases.append((host, lease, by_version))
        seen = self.fences.setdefault(lease.key, [])
        if seen and lease.fence <= seen[-1]:
            self.fail(
                "fences strictly increase", f"{host} got fence {lease.fence} after {seen[-1]}"
            )
        seen.append(lease.fence)
        self.check()

    def check(self) -> None:
        """Mutual exclusion by the holders' own view, now."""
        holders: dict[str, list[tuple[str, bool]]] = {}
        for host, lease, by_version in self.leases:  # in grant order
            if lease.held:
                holders.setdefault(lease.key, []).append((host, by_version))
        for key, held in holders.items():
            hosts = sorted({host for host, _ in held})
            latest_by_version = held[-1][1]
            if len(hosts) > 1 and (latest_by_version or not self.skew_beyond_bound):
                self.fail("mutual exclusion", f"{hosts} all hold {key!r}")

    def fail(self, prop: str, detail: str) -> None:
        if not any(v.property == prop for v in self.violations):  # the first of each
            self.violations.append(Violation(prop, detail, anyio.current_time() - START))


@dataclass
class World:
    """One run: the shared store, the choices, the checker, and a host factory."""

    choices: Choices
    checker: Checker
    store: Store
    late: float
    soon: float = 0.3
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    views: dict[str, FaultyStore] = field(default_factory=dict)  # each host's store
    network: TaskGroup = field(init=False)  # where requests already sent still arrive

    def by_version(self, host: str, lease: Lease) -> bool:
        """Whether `lease` was granted on a condition on a version its host had seen."""
        return any(
            call.params.get("seen_version") is not None
            for call in self.views[host].calls_of("acquire")
            if call.params.get("token") == lease.token
        )

    def host(self, name: str, *, offset: float = 0.0, **options: Any) -> LeaseManager:
        """A host's manager: its own wall clock (`offset` from the others'), its own
        view of the store (every operation a choice point), seeded jitter and tokens."""
        tokens = (f"{name}-{n}" for n in range(1_000_000))
        view = store_choices(
            self.store,
            self.choices,
            name,
            soon=self.soon,
            late=self.late,
            network=lambda: self.network,
        )
        self.views[name] = view
        if abs(offset) > self.options.get("max_clock_skew", 1.0):
            self.checker.skew_beyond_bound = True
        return LeaseManager(
            view,
            owner=name,
            wall_clock=lambda: EPOCH + offset + anyio.current_time(),
            suspend_clock=anyio.current_time,
            token_factory=lambda: next(tokens),
            rng=random.Random(f"{self.seed}:{name}"),  # noqa: S311  (jitter)
            **{**self.options, **options},
        )

    async def hold(
        self, name: str, manager: LeaseManager, key: str, *, ttl: float, hold: float, **kw: Any
    ) -> None:
        """Take `key` (as `async with manager.lease`), keep it `hold` seconds, let go.

        A lease error ends the host's work (a loss, a timeout, a store that failed).
        """
        try:
            async with manager.lease(key, ttl=ttl, **kw) as lease:
                self.checker.granted(name, lease, by_version=self.by_version(name, lease))
                await anyio.sleep(hold)
        except LeaseError:
            pass


Scenario = Callable[[World], Callable[[], Awaitable[None]]]


@dataclass
class Report:
    """What one exploration did."""

    schedules: int = 0
    violations: list[tuple[Violation, str]] = field(default_factory=list)
    seconds: float = 0.0
    operations: int = 0


def run_once(
    scenario: Scenario,
    prefix: list[int],
    *,
    max_faults: int,
    late: float,
    store: Callable[[], Store] = MemoryStore,
    options: dict[str, Any] | None = None,
) -> tuple[Choices, Checker, int]:
    """One run of `scenario` on virtual time, along `prefix`."""
    choices = Choices(prefix, max_faults=max_faults)
    checker = Checker()
    world = World(choices, checker, store(), late, options=options or {})
    work = scenario(world)

    choices.observer = checker.check

    async def main() -> None:
        async with anyio.create_task_group() as network:
            world.network = network
            await work()
            network.cancel_scope.cancel()  # the run is over: what is still on the wire

    run_virtual(main)
    return choices, checker, len(choices.made)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No log lines from the library while thousands of runs go by."""
    logger = logging.getLogger("aiolease")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def explore(
    scenario: Scenario,
    *,
    max_faults: int,
    late: float,
    store: Callable[[], Store] = MemoryStore,
    options: dict[str, Any] | None = None,
    stop_at_first: bool = False,
) -> Report:
    """Run every schedule of `scenario` with at most `max_faults` faults, depth first."""
    report = Report()
    started = time.perf_counter()
    prefix: list[int] | None = []
    with quiet():
        _search(
            scenario,
            report,
            prefix,
            max_faults=max_faults,
            late=late,
            store=store,
            options=options,
            stop_at_first=stop_at_first,
        )
    report.seconds = time.perf_counter() - started
    return report


def _search(
    scenario: Scenario,
    report: Report,
    prefix: list[int] | None,
    *,
    max_faults: int,
    late: float,
    store: Callable[[], Store],
    options: dict[str, Any] | None,
    stop_at_first: bool,
) -> None:
    while prefix is not None:
        choices, checker, operations = run_once(
            scenario, prefix, max_faults=max_faults, late=late, store=store, options=options
        )
        report.schedules += 1
        report.operations += operations
        for violation in checker.violations:
            report.violations.append((violation, choices.schedule()))
        if report.violations and stop_at_first:
            break
        prefix = choices.next_prefix()
