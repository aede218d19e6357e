"""The snapshot store's contract on the in-memory fake."""

from __future__ import annotations

import pytest

from tests.fakes.env import FakeSnapshots
from tests.snapshot_contract import SnapshotContract


class TestFakeSnapshots(SnapshotContract):
    @pytest.fixture
    def snapshots(self) -> FakeSnapshots:
        return FakeSnapshots()

    def keyless(self) -> FakeSnapshots:
        return FakeSnapshots(key=None, rows={})
