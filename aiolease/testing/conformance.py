"""The contract every lease store keeps, as a pytest class to subclass.

A store author proves a store by subclassing `StoreContract` and giving it a ``store``
fixture::

    from aiolease.testing.conformance import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self) -> MyStore:
            return MyStore(...)

Every test of the class then runs against that store: the conditions of each operation,
what a refused write returns, fence growth, the data rules, the release markers, the
revoked tokens, listing and pagination, and how failures are classified. Each test uses
keys of its own, so one table may serve them all. The tests take their wall-clock
readings from `wall` and move time with `advance()`: a store that judges expiry by its
own clock must read `clock` (see `MemoryStore(semantics="server-clock",
clock=self.clock)`), or override `advance()`.

Two more fixtures prove the store's error classification; without them those tests are
skipped: ``unreachable_store`` (the same store pointed at a server that is not there: a
closed port) and ``missing_table_store`` (the same store on a table that does not exist).

Needs pytest and pytest-asyncio (the ``aiolease[testing]`` extra).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aiolease._exceptions import LeaseStoreError, TableNotFoundError
from aiolease.store import RESTORE, UNSET, DataUpdate, Now, Outcome, Record, Store

__all__ = ["StoreContract"]

SKEW = 1.0  # the max_clock_skew the contract's readings carry
TTL = 10.0


@pytest.mark.asyncio
class StoreContract:
    """The store contract. Subclass it and define a ``store`` fixture.

    Class attributes a subclass may set:

    - `refusals_carry_the_record`: a refused write returns the record that refused it
      (True); False allows None, for servers that cannot return it (the manager then
      reads the record back).
    - `page_size_hint`: how many keys the listing test creates (enough for two pages
      where the store pages by count).
    """

    refusals_carry_the_record = True
    page_size_hint = 120
    wall: float

    # -- the contract's own clock ---------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _start_clock(self) -> None:
        self.wall = time.time()

    def clock(self) -> float:
        """The contract's wall clock: give it to a store that judges expiry by its own."""
        return self.wall

    def now(self) -> Now:
        """The reading sent with each request, as a manager would."""
        return Now(self.wall, SKEW)

    async def advance(self, store: Store, seconds: float) -> None:  # noqa: ARG002
        """Move time on for the store's expiry rule (the wall clock, here)."""
        self.wall += seconds

    async def delete_item(self, store: Store, key: str) -> None:
        """Delete `key`'s item as TTL or an operator would; override for your store."""
        delete = getattr(store, "delete", None)
        if delete is None:
            pytest.skip(f"{type(store).__name__}: override delete_item() to test deletion")
        delete(key)

    @pytest.fixture
    def unreachable_store(self) -> Store:
        """The store pointed at a server that is not there; override to test it."""
        pytest.skip(f"{type(self).__name__}: define unreachable_store to test it")

    @pytest.fixture
    def missing_table_store(self) -> Store:
        """The store on a table that does not exist; override to test it."""
        pytest.skip(f"{type(self).__name__}: define missing_table_store to test it")

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def new_key() -> str:
        return f"contract:{uuid.uuid4().hex}"

    async def grant(
        self,
        store: Store,
        key: str,
        *,
        token: str | None = None,
        owner: str = "owner",
        version: str | None = None,
        seen_version: str | None = None,
        data: DataUpdate = UNSET,
        ttl: float = TTL,
    ) -> Outcome:
        return await store.acquire(
            key,
            owner=owner,
            token=token or uuid.uuid4().hex,
            version=version or uuid.uuid4().hex,
            ttl=ttl,
            seen_version=seen_version,
            data=data,
            now=self.now(),
        )

    async def read(self, store: Store, key: str) -> Record:
        record = await store.get(key, now=self.now())
        assert record is not None, f"no record for {key!r}"
        return record

    async def assert_refused(self, store: Store, outcome: Outcome, key: str) -> None:
        """A refused write changed nothing and shows the record that refused it."""
        assert not outcome.applied
        if outcome.record is not None or self.refusals_carry_the_record:
            current = await store.get(key, now=self.now())
            assert outcome.record is not None
            assert current is not None
            assert _stored(outcome.record) == _stored(current)

    # -- what it is ------------------------------------------------------------------------

    async def test_it_says_where_its_leases_live(self, store: Store) -> None:
        assert isinstance(store.table, str)
        assert isinstance(store.location, str)
        assert store.table in store.location, "the location names the table"

    # -- acquire ---------------------------------------------------------------------------

    async def test_acquiring_a_free_key_writes_a_whole_grant(self, store: Store) -> None:
        key = self.new_key()
        outcome = await self.grant(store, key, token="t1", owner="o1", version="v1")
        assert outcome.applied
        record = outcome.record
        assert record is not None
        assert (record.key, record.owner, record.token, record.version) == (key, "o1", "t1", "v1")
        assert record.sequence == 1
        assert record.duration_ms == TTL * 1000
        assert isinstance(record.fence, int)
        assert record.expires_at_ms is not None
        assert record.held
        assert record.takeover_in is not None
        assert 0 < record.takeover_in <= TTL + SKEW + 0.01
        assert _stored(await self.read(store, key)) == _stored(record)

    async def test_a_held_key_is_refused_with_its_holder(self, store: Store) -> None:
        key = self.new_key()
        await self.grant(store, key, token="t1", owner="o1")
        refused = await self.grant(store, key, token="t2", owner="o2")
        await self.assert_refused(store, refused, key)
        if refused.record is not None:
            assert (refused.record.token, refused.record.owner) == ("t1", "o1")
            assert refused.record.held

    async def test_a_resent_grant_is_refused_and_shows_its_own_token_and_version(
        self, store: Store
    ) -> None:
        key = self.new_key()
        first = await self.grant(store, key, token="t1", version="v1")
        again = await self.grant(store, key, token="t1", version="v1")
        await self.assert_refused(store, again, key)
        record = await self.read(store, key)
        assert (record.token, record.version) == ("t1", "v1")
        assert first.record is not None
        assert record.fence == first.record.fence  # applied once: the fence did not skip

    async def test_an_expired_lease_may_be_taken_over(self, store: Store) -> None:
        key = self.new_key()
        first = await self.grant(store, key, token="t1", ttl=1.0)
        assert await _refused_now(self, store, key)
        await self.advance(store, 1.0 + SKEW + 0.01)
        record = await self.read(store, key)
        assert not record.held
        assert record.takeover_in is not None
        assert record.takeover_in < 0
        taken = await self.grant(store, key, token="t2")
        assert taken.applied
        assert _fence(taken) > _fence(first)

    async def test_an_unchanged_version_may_be_taken_over_before_expiry(self, store: Store) -> None:
        key = self.new_key()
        await self.grant(store, key, token="t1", version="v1")
        other = await self.grant(store, key, token="t2", seen_version="v0")
        await self.assert_refused(store, other, key)
        taken = await self.grant(store, key, token="t2", seen_version="v1")
        assert taken.applied

    async def test_fences_grow_with_every_grant(self, store: Store) -> None:
        key = self.new_key()
        fences: list[int] = []
        for n in range(4):
            token = f"t{n}"
            fences.append(_fence(await self.grant(store, key, token=token)))
            released = await store.release(key, token=token, data=UNSET, now=self.now())
            assert released.applied
        assert fences == sorted(set(fences))

    async def test_the_fence_keeps_growing_after_the_item_is_deleted(self, store: Store) -> None:
        key = self.new_key()
        first = await self.grant(store, key, token="t1")
        await self.delete_item(store, key)
        assert await store.get(key, now=self.now()) is None
        # A store may seed a lost counter from the clock (DynamoDB's does): time passes.
        await self.advance(store, 0.001)
        again = await self.grant(store, key, token="t2")
        assert _fence(again) > _fence(first)

    # -- refresh ---------------------------------------------------------------------------

    async def test_the_holder_refreshes_with_a_new_version_and_sequence(self, store: Store) -> None:
        key = self.new_key()
        granted = await self.grant(store, key, token="t1", version="v1", ttl=1.0)
        await self.advance(store, 0.5)
        outcome = await store.refresh(
            key, token="t1", version="v2", ttl=TTL, sequence=2, data=UNSET, now=self.now()
        )
        assert outcome.applied
        record = outcome.record
        assert record is not None
        assert granted.record is not None
        assert (record.version, record.sequence, record.fence) == ("v2", 2, granted.record.fence)
        assert record.duration_ms == TTL * 1000
        assert record.expires_at_ms is not None
        assert granted.record.expires_at_ms is not None
        assert record.expires_at_ms > granted.record.expires_at_ms
        again = await store.refresh(
            key, token="t1", version="v2", ttl=TTL, sequence=2, data=UNSET, now=self.now()
        )
        assert again.applied  # a retried refresh applies the same values again

    async def test_a_refresh_older_than_one_applied_is_refused(self, store: Store) -> None:
        key = self.new_key()
        await self.grant(store, key, token="t1")
        newer = await store.refresh(
            key, token="t1", version="v3", ttl=TTL, sequence=3, data=UNSET, now=self.now()
        )
        assert newer.applied
        late = await store.refresh(
            key, token="t1", version="v2", ttl=TTL, sequence=2, data=UNSET, now=self.now()
        )
        await self.assert_refused(store, late, key)
        assert (await self.read(store, key)).version == "v3"

    async def test_a_refresh_with_another_token_is_refused(self, store: Store) -> None:
        key = self.new_key()
        await self.grant(store, key, token="t1")
        outcome = await store.refresh(
            key, token="t2", version="v2", ttl=TTL, sequence=2, data=UNSET, now=self.now()
        )
        await self.assert_refused(store, outcome, key)
        missing = await store.refresh(
            self.new_key(), token="t2", version="v", ttl=TTL, sequence=2, data=UNSET, now=self.now()
        )
        assert not missing.applied
        assert missing.record is None

    # -- release ---------------------------------------------------------------------------

    async def test_release_clears_the_holder_and_keeps_fence_and_data(self, store: Store) -> None:
        key = self.new_key()
        granted = await self.grant(store, key, token="t1", data='{"a":1}')
        released = await store.release(key, token="t1", data=UNSET, now=self.now())
        assert released.applied
        record = await self.read(store, key)
        assert granted.record is not None
        assert record.token is None
        assert not record.held
        assert record.released == "t1"
        assert (record.fence, record.data) == (granted.record.fence, '{"a":1}')

    async def test_release_with_another_token_changes_nothing(self, store: Store) -> None:
        key = self.new_key()
        await self.grant(store, key, token="t1")
        outcome = await store.release(key, token="t2", data=None, now=self.now())
        await self.assert_refused(store, outcome, key)
        assert (await self.read(store, key)).token == "t1"

    async def test_data_is_set_cleared_or_kept_by_each_write(self, store: Store) -> None:
        key = self.new_key()
        await self.grant(store, key, token="t1", data='"a"')
        assert (await self.read(store, key)).data == '"a"'
        await store.refresh(
            key, token="t1", version="v2", ttl=TTL, sequence=2, data=UNSET, now=self.now()
        )
        assert (await self.read(store, key)).data == '"a"'
        await store.refresh(
            key, token="t1", version="v3", ttl=TTL, sequence=3, data='"b"', now=self.now()
        )
        assert (await self.read(store, key)).data == '"b"'
        await store.release(key, token="t1", data=None, now=self.now())
        assert (await self.read(store, key)).data is None

    async def test_an_undone_grant_puts_back_the_data_it_found(self, store: Store) -> None:
        key = self.new_key()
        await self.grant(store, key, token="t1", data='"before"')
        await store.release(key, token="t1", data=UNSET, now=self.now())
        await self.grant(store, key, token="t2", data='"mine"')
        assert (await self.read(store, key)).data == '"mine"'
        undone = await store.release(key, token="t2", data=RESTORE, now=self.now())
        assert undone.applied
        assert (await self.read(store, key)).data == '"before"'

    async def test_release_markers_refuse_late_grants_of_released_tokens(
        self, store: Store
    ) -> None:
        key = self.new_key()
        await self.grant(store, key, token="t1")
        await store.release(key, token="t1", data=UNSET, now=self.now())
        late = await self.grant(store, key, token="t1")
        await self.assert_refused(store, late, key)
        await self.grant(store, key, token="t2")
        await store.release(key, token="t2", data=UNSET, now=self.now())
        record = await self.read(store, key)
        assert (record.released, record.released_before) == ("t2", "t1")
        assert not (await self.grant(store, key, token="t1")).applied  # one step back too

    # -- revoke and break ------------------------------------------------------------------

    async def test_revoked_tokens_are_kept_newest_first_and_refused(self, store: Store) -> None:
        key = self.new_key()
        assert (await store.revoke(key, token="r1", previous=(), now=self.now())).applied
        stale = await store.revoke(key, token="r2", previous=(), now=self.now())
        assert not stale.applied  # conditioned on the list as last seen
        assert (await store.revoke(key, token="r2", previous=("r1",), now=self.now())).applied
        assert (await self.read(store, key)).revoked == ("r2", "r1")
        refused = await self.grant(store, key, token="r1")
        assert not refused.applied
        previous: tuple[str, ...] = ("r2", "r1")
        for n in range(3, 20):
            assert (
                await store.revoke(key, token=f"r{n}", previous=previous, now=self.now())
            ).applied
            previous = (f"r{n}", *previous)[:16]
        assert (await self.read(store, key)).revoked == previous

    async def test_break_clears_exactly_the_grant_it_names(self, store: Store) -> None:
        key = self.new_key()
        granted = await self.grant(store, key, token="t1", owner="o1")
        assert granted.record is not None
        wrong = await store.break_lease(
            key, token="t1", fence=(granted.record.fence or 0) + 1, marker="!b", now=self.now()
        )
        await self.assert_refused(store, wrong, key)
        broken = await store.break_lease(
            key, token="t1", fence=granted.record.fence, marker="!b", now=self.now()
        )
        assert broken.applied
        assert broken.record is not None
        assert (broken.record.token, broken.record.owner) == ("t1", "o1")  # as it was
        record = await self.read(store, key)
        assert (record.token, record.released, record.fence) == (None, "!b", granted.record.fence)

    # -- reads -----------------------------------------------------------------------------

    async def test_get_of_a_key_never_written_is_none(self, store: Store) -> None:
        assert await store.get(self.new_key(), now=self.now()) is None

    async def test_listing_pages_through_the_held_keys_with_the_prefix(self, store: Store) -> None:
        prefix = f"{self.new_key()}:"
        keys = [f"{prefix}{n:04}" for n in range(self.page_size_hint)]
        for key in keys:
            await self.grant(store, key, token=f"t-{key}")
        await store.release(keys[3], token=f"t-{keys[3]}", data=UNSET, now=self.now())
        await self.grant(store, self.new_key())  # another prefix
        listed: list[Record] = []
        cursor: Any = None
        while True:
            page = await store.list_page(prefix, cursor=cursor, now=self.now())
            listed.extend(page.records)
            if page.cursor is None:
                break
            cursor = page.cursor
        assert sorted(r.key for r in listed) == [k for k in keys if k != keys[3]]
        assert all(r.held for r in listed)

    # -- failures --------------------------------------------------------------------------

    async def test_an_unreachable_server_is_a_transient_store_error(
        self, unreachable_store: Store
    ) -> None:
        key, now = self.new_key(), self.now()
        reads: dict[str, Callable[[], Awaitable[object]]] = {
            "get": lambda: unreachable_store.get(key, now=now),
            "list_page": lambda: unreachable_store.list_page(key, cursor=None, now=now),
            "check_table": unreachable_store.check_table,
        }
        writes: dict[str, Callable[[], Awaitable[object]]] = {
            "acquire": lambda: self.grant(unreachable_store, key),
            "refresh": lambda: unreachable_store.refresh(
                key, token="t", version="v", ttl=TTL, sequence=2, data=UNSET, now=now
            ),
            "release": lambda: unreachable_store.release(key, token="t", data=UNSET, now=now),
            "break_lease": lambda: unreachable_store.break_lease(
                key, token="t", fence=None, marker="!m", now=now
            ),
            "revoke": lambda: unreachable_store.revoke(key, token="t", previous=(), now=now),
        }
        for name, operation in {**reads, **writes}.items():
            with pytest.raises(LeaseStoreError) as caught:
                await operation()
            error = caught.value
            assert error.transient, f"{name}: {error!r} should be transient"
            assert error.__cause__ is not None, f"{name}: the driver's error is its cause"
            assert str(error), f"{name}: a store error says what failed"
            if name in reads:
                assert not error.maybe_applied, f"{name}: a read applies nothing"

    async def test_a_missing_table_is_table_not_found_and_not_transient(
        self, missing_table_store: Store
    ) -> None:
        with pytest.raises(TableNotFoundError) as caught:
            await missing_table_store.check_table()
        assert caught.value.table == missing_table_store.table
        assert not caught.value.transient
        with pytest.raises(TableNotFoundError):
            await missing_table_store.get(self.new_key(), now=self.now())
        with pytest.raises(TableNotFoundError) as written:
            await self.grant(missing_table_store, self.new_key())
        assert not written.value.maybe_applied


async def _refused_now(contract: StoreContract, store: Store, key: str) -> bool:
    return not (await contract.grant(store, key, token=uuid.uuid4().hex)).applied


def _fence(outcome: Outcome) -> int:
    """The fence of a granted record: an integer, always."""
    assert outcome.applied
    assert outcome.record is not None
    assert isinstance(outcome.record.fence, int)
    return outcome.record.fence


def _stored(record: Record) -> tuple[Any, ...]:
    """What the store holds of a record, without the read-time judgement."""
    return (
        record.key,
        record.owner,
        record.token,
        record.version,
        record.fence,
        record.expires_at_ms,
        record.duration_ms,
        record.data,
        record.released,
        record.released_before,
        record.revoked,
        record.sequence,
    )
