"""Choice points: where a run may go one way or another, chosen by a sequence of numbers.

`Choices` hands out the choices of one run: replayed from a given prefix, then the
first option (no fault) at every later point, and records every choice with how many
options it had. Enumerating prefixes depth first (`Choices.next_prefix`) visits every
run of a scenario exactly once: stateless model checking. A fault budget keeps the tree
finite: once `max_faults` choices other than the first were made, every point has one
option left.

`store_choices(store, choices, host)` makes every operation of a host on `store` a
choice point: answered at once, its answer lost, refused before applying, applied soon
or late, applied twice, or applied with no answer ever (see `WRITE_FATES`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import anyio
from anyio.abc import TaskGroup

from aiolease._exceptions import LeaseStoreError
from aiolease.store import Outcome, Store

from ._fault_plans import Fault, FaultContext, Perform, Where
from ._faulty_store import FaultyStore
from ._virtual_time import START

__all__ = [
    "READ_FATES",
    "WRITE_FATES",
    "Choice",
    "Choices",
    "DivergedError",
    "Network",
    "store_choices",
]

#: Where delayed operations are delivered: a function returning a running task group.
Network = Callable[[], TaskGroup]

#: What may become of a write, in the order tried: the first is "no fault". "applied
#: soon" answers after a short delay (`soon`), "applied late" after the sender's deadline
#: (`late`); "applied twice" is a driver's re-send, answered by the second application.
WRITE_FATES: Final = (
    "answered",
    "answer lost",
    "refused",
    "applied soon",
    "applied late",
    "applied twice",
    "no answer",
)
#: What may become of a read (a refusal; a read that applies nothing cannot be lost).
READ_FATES: Final = ("answered", "refused")
_WRITES: Final = frozenset({"acquire", "refresh", "release", "break_lease", "revoke"})


class DivergedError(RuntimeError):
    """A replayed run did not meet the choice its prefix expects: it is not deterministic."""


@dataclass(frozen=True)
class Choice:
    """One choice made in a run: `picked` of `options`, at virtual time `at`."""

    at: float
    label: str
    options: tuple[str, ...]
    picked: int

    def __str__(self) -> str:
        return f"{self.at:8.3f} s  {self.label}: {self.options[self.picked]}"


class Choices:
    """The choices of one run: `prefix` first, then the first option everywhere."""

    def __init__(self, prefix: Sequence[int] = (), *, max_faults: int) -> None:
        self.prefix = list(prefix)
        self.max_faults = max_faults
        self.made: list[Choice] = []
        self.faults = 0
        self.observer: Callable[[], object] | None = None  # told of every choice point

    def choose(self, label: str, options: Sequence[str]) -> int:
        """Pick one of `options` at this point; the choice is recorded."""
        if self.observer is not None:
            self.observer()
        offered = tuple(options) if self.faults < self.max_faults else tuple(options[:1])
        index = len(self.made)
        picked = self.prefix[index] if index < len(self.prefix) else 0
        if picked >= len(offered):
            message = (
                f"choice {index} ({label}) has {len(offered)} options, the prefix says "
                f"{picked}: the run is not a pure function of its choices"
            )
            raise DivergedError(message)
        self.made.append(Choice(anyio.current_time() - START, label, offered, picked))
        if picked:
            self.faults += 1
        return picked

    def next_prefix(self) -> list[int] | None:
        """The prefix of the next run, depth first; None once every run was made."""
        picks = [(c.picked, len(c.options)) for c in self.made]
        while picks and picks[-1][0] == picks[-1][1] - 1:
            picks.pop()
        if not picks:
            return None
        *kept, (last, _) = picks
        return [picked for picked, _ in kept] + [last + 1]

    def schedule(self) -> str:
        """The run's choices that were faults, one line each (the readable schedule)."""
        return "\n".join(str(c) for c in self.made if c.picked) or "(no faults)"


class _Chosen(Fault):
    """A store operation whose fate is a choice point."""

    name = "chosen"
    acts_on: ClassVar[frozenset[Where]] = frozenset({"store"})

    def __init__(
        self, choices: Choices, host: str, *, soon: float, late: float, network: Network | None
    ) -> None:
        self.choices = choices
        self.host = host
        self.soon = soon
        self.late = late
        self.network = network

    async def apply(self, perform: Perform, ctx: FaultContext) -> Any:
        write = ctx.operation in _WRITES
        key = ctx.call.params.get("key", ctx.call.params.get("prefix", ""))
        label = f"{self.host} {ctx.operation}" + (f" {key!r}" if key else "")
        fate = (WRITE_FATES if write else READ_FATES)[
            self.choices.choose(label, WRITE_FATES if write else READ_FATES)
        ]
        ctx.call.outcome = fate
        if fate == "answered":
            return await perform()
        if fate == "refused":
            raise _error(ctx, "refused before applying", maybe_applied=False)
        if fate in {"applied soon", "applied late"}:
            delay = self.soon if fate == "applied soon" else self.late
            return await self._delayed(perform, delay)
        if fate == "applied twice":
            await perform()
            again = await perform()
            return dataclasses.replace(again, resent=True) if isinstance(again, Outcome) else again
        await perform()
        if fate == "answer lost":
            raise _error(ctx, "the answer was lost", maybe_applied=True)
        await anyio.sleep_forever()  # "no answer": applied, and the caller hears nothing
        raise AssertionError("unreachable")  # pragma: no cover

    async def _delayed(self, perform: Perform, delay: float) -> Any:
        """Apply the operation `delay` seconds from now, whether or not its sender waits.

        A request on the wire arrives all the same (given a `network` to run in).
        """
        if self.network is None:
            await anyio.sleep(delay)
            return await perform()
        answered = anyio.Event()
        answer: list[Any] = []

        async def deliver() -> None:
            await anyio.sleep(delay)
            try:
                answer.append(await perform())
            except Exception as error:  # noqa: BLE001 - the sender gets it, if it still waits
                answer.append(error)
            answered.set()

        self.network().start_soon(deliver)
        await answered.wait()
        if isinstance(answer[0], Exception):
            raise answer[0]
        return answer[0]


def _error(ctx: FaultContext, what: str, *, maybe_applied: bool) -> LeaseStoreError:
    error = LeaseStoreError(
        f"{ctx.operation}: {what} (a chosen fault)",
        operation=ctx.operation,
        transient=True,
        maybe_applied=maybe_applied,
    )
    error.__cause__ = ConnectionError(what)
    return error


def store_choices(
    store: Store,
    choices: Choices,
    host: str,
    *,
    soon: float,
    late: float,
    network: Network | None = None,
) -> FaultyStore:
    """`store` as `host` sees it: each operation's fate chosen by `choices`.

    ``"applied soon"`` applies the operation `soon` seconds after it was sent, and
    ``"applied late"`` after `late` seconds (make it longer than the sender's deadline).
    With `network` (a function returning a task group), a delayed operation is applied
    in it even if its sender stopped waiting, as a request already sent would be.
    """
    wrapped = FaultyStore(store)
    fault = _Chosen(choices, host, soon=soon, late=late, network=network)
    wrapped.plan("*", fault, times=None)
    return wrapped
