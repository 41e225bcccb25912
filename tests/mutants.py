"""Mutants: the library with one deliberate defect, for proving that a checker can fail.

`mutant(module, old, new)` edits one place of a module's source and swaps the compiled
code into the module's existing functions and methods, so every reference to them
(imports elsewhere included) runs the defect until the block ends.
"""

from __future__ import annotations

import contextlib
import inspect
import types
from collections.abc import Iterator
from typing import Any


def _functions(original: Any, replacement: Any) -> Iterator[tuple[Any, Any]]:
    """Pairs of (original, mutated) plain functions, methods included."""
    if isinstance(original, types.FunctionType) and isinstance(replacement, types.FunctionType):
        yield original, replacement
    elif isinstance(original, type) and isinstance(replacement, type):
        for name, attribute in vars(original).items():
            yield from _functions(*_unwrapped(attribute, vars(replacement).get(name)))


def _unwrapped(attribute: Any, mutated: Any) -> tuple[Any, Any]:
    """The functions behind a static or class method, or a property's getter."""
    for kind in (staticmethod, classmethod):
        if isinstance(attribute, kind) and isinstance(mutated, kind):
            return attribute.__func__, mutated.__func__
    if isinstance(attribute, property) and isinstance(mutated, property):
        return attribute.fget, mutated.fget
    return attribute, mutated


@contextlib.contextmanager
def mutant(module: types.ModuleType, old: str, new: str) -> Iterator[None]:
    """Run the block with `old` replaced by `new` in `module`'s source (exactly once)."""
    source = inspect.getsource(module)
    assert source.count(old) == 1, f"{old!r} must occur once in {module.__name__}"
    namespace: dict[str, Any] = {"__name__": module.__name__, "__package__": module.__package__}
    code = compile(source.replace(old, new), f"<mutant of {module.__name__}>", "exec")
    exec(code, namespace)  # noqa: S102  (the library's own source, one edit)
    swapped: list[tuple[Any, types.CodeType]] = []
    for name, original in vars(module).items():
        for function, mutated in _functions(original, namespace.get(name)):
            if function.__code__ != mutated.__code__:
                swapped.append((function, function.__code__))
                function.__code__ = mutated.__code__
    assert swapped, f"the edit changed no function of {module.__name__}"
    try:
        yield
    finally:
        for function, code_object in swapped:
            function.__code__ = code_object
