"""The store's contract, on the in-memory fake the unit tier uses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fakes.ports import FakeClock
from tests.fakes.store import FakeStore
from tests.follow_ups_contract import FollowUpsContract
from tests.store_contract import T0, StoreContract


class TestFakeStore(StoreContract, FollowUpsContract):
    @pytest.fixture
    def store(self) -> FakeStore:
        return FakeStore(FakeClock(T0))

    def expire_leases(self, store: FakeStore) -> None:  # type: ignore[override]
        store.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
