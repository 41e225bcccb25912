"""MemoryStore against DynamoDB Local: the same random operations give the same answers.

Each seed drives one sequence of operations from three owners on two keys (acquires
with and without the version rule, re-sent acquires, refreshes in and out of order,
releases with every kind of data update, breaks, revokes, reads, listings, deletions of
the item, and time passing) applied to both stores with the same clock readings. Every
outcome and every record must be identical, fences and read-time judgements included.

The suite runs six seeds; ``nox -s differential`` runs many. A diverging seed prints
its sequence and the command that replays it (``AIOLEASE_DIFFERENTIAL_SEED=N``).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from support import Backend

from aiolease.dynamodb import DynamoDBStore
from aiolease.store import RESTORE, UNSET, DataUpdate, Now, Outcome, Page, Record, Store
from aiolease.testing import MemoryStore

pytestmark = pytest.mark.backends("ddblocal")

FIRST_SEED = int(os.environ.get("AIOLEASE_DIFFERENTIAL_FIRST_SEED", "0"))
RUNS = int(os.environ.get("AIOLEASE_DIFFERENTIAL_RUNS", "6"))
STEPS = int(os.environ.get("AIOLEASE_DIFFERENTIAL_STEPS", "150"))
REPLAY = os.environ.get("AIOLEASE_DIFFERENTIAL_SEED")
SEEDS = [int(REPLAY)] if REPLAY else list(range(FIRST_SEED, FIRST_SEED + RUNS))
SKEW = 1.0
OWNERS = ("a", "b", "c")


@dataclass
class World:
    """What the generator has seen, to choose arguments that hit the conditions."""

    rng: random.Random
    prefix: str
    wall: float = field(default_factory=time.time)
    counter: int = 0
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)  # (owner, key) -> token
    sequences: dict[str, int] = field(default_factory=dict)  # token -> last sequence sent
    history: list[str] = field(default_factory=list)  # every acquire token so far
    seen: dict[str, Record] = field(default_factory=dict)  # key -> last record seen

    def fresh(self, kind: str) -> str:
        self.counter += 1
        return f"{kind}{self.counter}"

    def now(self) -> Now:
        return Now(self.wall, SKEW)

    def data(self, *, restore: bool = False) -> DataUpdate:
        choices: list[DataUpdate] = [UNSET, UNSET, None, f'"{self.fresh("d")}"']
        if restore:
            choices.append(RESTORE)
        return self.rng.choice(choices)


@dataclass
class Step:
    """One operation, as it reads in a failure's timeline."""

    name: str
    key: str
    arguments: dict[str, Any]

    def __str__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        return f"{self.name}({self.key!r}{', ' if shown else ''}{shown})"


def choose(world: World) -> Step:  # noqa: PLR0911 (one return per kind of operation)
    """The next operation, with arguments chosen to hit each condition of the store."""
    rng = world.rng
    key = world.prefix + rng.choice(("k0", "k1"))
    owner = rng.choice(OWNERS)
    seen = world.seen.get(key)
    token = world.tokens.get((owner, key))
    kind = rng.choices(
        ("acquire", "refresh", "release", "break", "revoke", "get", "list", "delete", "wait"),
        weights=(8, 4, 4, 1, 1, 2, 1, 1, 3),
    )[0]
    if kind == "acquire":
        return _acquire(world, key, owner, seen)
    if kind == "refresh" and token is not None:
        return _refresh(world, key, token)
    if kind == "release" and token is not None:
        return Step("release", key, {"token": token, "data": world.data(restore=True)})
    if kind == "break" and seen is not None and seen.token is not None:
        fence = seen.fence if rng.random() < 0.8 else (seen.fence or 0) + 1
        return Step("break", key, {"token": seen.token, "fence": fence, "marker": world.fresh("m")})
    if kind == "revoke":
        previous = seen.revoked if seen is not None and rng.random() < 0.8 else ()
        return Step("revoke", key, {"token": token or world.fresh("t"), "previous": previous})
    if kind in {"list", "delete"}:
        return Step(kind, world.prefix if kind == "list" else key, {})
    if kind == "wait":
        return Step("wait", key, {"seconds": rng.choice((0.001, 0.5, 2.0, 7.0))})
    return Step("get", key, {})


def _acquire(world: World, key: str, owner: str, seen: Record | None) -> Step:
    rng = world.rng
    token = world.tokens.get((owner, key))
    roll = rng.random()
    if roll < 0.15 and world.history:  # a late write of some earlier attempt
        token = world.tokens[(owner, key)] = rng.choice(world.history)
    elif token is None or roll < 0.6:  # a new attempt, or a re-send of the last
        token = world.tokens[(owner, key)] = world.fresh("t")
        world.history.append(token)
    seen_version = seen.version if seen is not None and rng.random() < 0.3 else None
    arguments: dict[str, Any] = {"owner": owner, "token": token, "version": world.fresh("v")}
    arguments |= {"ttl": rng.choice((1.0, 5.0)), "seen_version": seen_version}
    return Step("acquire", key, {**arguments, "data": world.data()})


def _refresh(world: World, key: str, token: str) -> Step:
    """A refresh whose sequence may also be one already sent, or older (a late one)."""
    last = world.sequences.get(token, 1)
    sequence = max(1, last + world.rng.choice((-1, 0, 1, 1)))
    world.sequences[token] = max(last, sequence)
    arguments: dict[str, Any] = {"token": token, "version": world.fresh("v")}
    arguments["ttl"] = world.rng.choice((1.0, 5.0))
    return Step("refresh", key, {**arguments, "sequence": sequence, "data": world.data()})


async def apply(store: Store, step: Step, now: Now, delete: Any) -> object:
    """Send `step` to `store`; return its answer in a comparable form."""
    writes: dict[str, Callable[..., Awaitable[Outcome]]] = {
        "acquire": store.acquire,
        "refresh": store.refresh,
        "release": store.release,
        "break": store.break_lease,
        "revoke": store.revoke,
    }
    if step.name in writes:
        return await writes[step.name](step.key, now=now, **step.arguments)
    if step.name == "get":
        return await store.get(step.key, now=now)
    if step.name == "delete":
        await delete(step.key)
        return None
    records: list[Record] = []
    cursor: Any = None
    while True:
        page: Page = await store.list_page(step.key, cursor=cursor, now=now)
        records.extend(page.records)
        if page.cursor is None:
            return sorted(records, key=lambda r: r.key)
        cursor = page.cursor


def learn(world: World, step: Step, answer: object) -> None:
    """Remember the record an answer showed, for the next choices."""
    record = answer.record if isinstance(answer, Outcome) else answer
    if isinstance(record, Record):
        world.seen[record.key] = record
    elif step.name in {"delete", "get"} and answer is None:
        world.seen.pop(step.key, None)


@pytest.mark.parametrize("seed", SEEDS)
async def test_memory_store_answers_as_dynamodb_local_does(backend: Backend, seed: int) -> None:
    reference = DynamoDBStore(backend.client, backend.table)
    fake = MemoryStore()

    async def delete_reference(key: str) -> None:
        await backend.client.delete_item(TableName=backend.table, Key=reference.item_key(key))

    async def delete_fake(key: str) -> None:
        fake.delete(key)

    world = World(
        random.Random(seed),  # noqa: S311 (a seeded schedule, not a secret)
        prefix=f"diff:{seed}:{uuid.uuid4().hex[:8]}:",
    )
    timeline: list[str] = []
    for number in range(STEPS):
        step = choose(world)
        if step.name == "wait":
            world.wall += step.arguments["seconds"]
            timeline.append(f"{number:4} {step}")
            continue
        now = world.now()
        expected = await apply(reference, step, now, delete_reference)
        got = await apply(fake, step, now, delete_fake)
        timeline.append(f"{number:4} {step}\n       -> {_shown(expected)}")
        if got != expected:
            pytest.fail(
                f"seed {seed}: MemoryStore diverged from DynamoDB Local at step {number}\n"
                + "\n".join(timeline)
                + f"\n  MemoryStore: {_shown(got)}\n"
                f"replay: AIOLEASE_DIFFERENTIAL_SEED={seed} scripts/test -s tests -- "
                "tests/test_differential.py",
                pytrace=False,
            )
        learn(world, step, expected)


def _shown(answer: object) -> str:
    if isinstance(answer, Outcome):
        state = "applied" if answer.applied else "refused"
        return f"{state}: {_shown(answer.record)}"
    if isinstance(answer, Record):
        fields = {k: getattr(answer, k) for k in Record.__dataclass_fields__}
        return " ".join(f"{k}={v!r}" for k, v in fields.items() if v not in (None, ()))
    if isinstance(answer, list):
        return "[" + "; ".join(_shown(r) for r in answer) + "]"
    return repr(answer)
