"""Virtual time: an asyncio event loop whose clock jumps to the next timer at once.

`VirtualEventLoop` is a plain `asyncio.SelectorEventLoop` with two changes, both through
public API: its clock (`loop.time()`) is a number this module moves, and its selector
never waits. When no callback is ready, the loop's own "wait for I/O until the next
timer" becomes "move the clock to the next timer", so ``await anyio.sleep(30)`` returns
at once with 30 virtual seconds gone, and timers fire in order. A run is then a pure
function of its inputs: no real time passes, nothing is left to the operating system's
scheduling.

Real I/O has no place in it: opening a socket or a pipe raises `RealIOError` at once,
and a run where every task waits with no timer due raises `DeadlockError` instead of hanging.
Use it with anyio as ``anyio.run(main, backend_options={"loop_factory":
VirtualEventLoop})``, or `run_virtual(main)`.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import anyio

__all__ = ["DeadlockError", "RealIOError", "VirtualEventLoop", "run_virtual"]

T = TypeVar("T")

#: Where virtual time starts, in seconds (any value works; not zero, to catch code that
#: mistakes the loop's clock for a duration).
START: Final = 1_000.0


class RealIOError(RuntimeError):
    """Code running on virtual time tried real I/O (a socket, a pipe, a subprocess)."""


class DeadlockError(RuntimeError):
    """Every task waits, and no timer is due: on virtual time, nothing can ever happen."""


class _NoWaitSelector(selectors.BaseSelector):
    """A selector that never blocks: waiting for I/O moves the virtual clock instead.

    It accepts only the event loop's own self-pipe, registered as the loop is made.
    """

    def __init__(self) -> None:
        self.now = START
        self._keys: dict[int, selectors.SelectorKey] = {}
        self.sealed = False  # once the loop exists, nothing more may be registered
        # Real I/O tried from a callback, where asyncio would only log the error: it ends
        # the run at the loop's next turn instead.
        self.failure: RealIOError | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        if self.sealed:
            self.failure = RealIOError(
                f"real I/O under virtual time ({fileobj!r}): code run on a "
                "VirtualEventLoop must not open sockets, pipes or subprocesses; give it "
                "an in-process store such as aiolease.testing.MemoryStore"
            )
            raise self.failure
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self.failure is not None:
            failure, self.failure = self.failure, None  # once: the tasks are then cancelled
            raise failure
        if timeout is None:
            raise DeadlockError(
                "every task waits and no timer is due: on virtual time nothing can "
                "happen any more (a task waits for an event nobody sets, for real I/O, "
                "or for a thread)"
            )
        self.now += max(0.0, timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return dict(self._keys)

    def close(self) -> None:
        self._keys.clear()


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on virtual time (see the module's documentation)."""

    def __init__(self) -> None:
        self._virtual = _NoWaitSelector()
        super().__init__(selector=self._virtual)
        self._virtual.sealed = True

    def time(self) -> float:
        """The virtual clock, in seconds."""
        return self._virtual.now

    def advance(self, seconds: float) -> None:
        """Move the clock on without running anything: a pause of the whole process."""
        if seconds < 0:
            raise ValueError("time does not go back")
        self._virtual.now += seconds

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> Any:  # type: ignore[override]  # noqa: ARG002
        raise RealIOError(
            f"a thread under virtual time ({func!r}): threads run on real time; code on a "
            "VirtualEventLoop must stay on the loop"
        )


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    """Run `main` on a fresh `VirtualEventLoop` with anyio, and return what it returns."""
    return anyio.run(main, backend_options={"loop_factory": VirtualEventLoop})
