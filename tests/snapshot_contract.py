"""The env-var snapshot store's contract: the in-memory fake (tests/unit) and the Postgres store
(tests/integration) must both pass it, so the fake the env kind's unit tests rely on cannot drift.

A subclass provides the ``snapshots`` fixture (with a usable key) and ``keyless()`` (the same
store with no ROLLBOT_SECRET_KEY).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from handlers.env_snapshots import EnvSnapshots, SnapshotUnreadable, SnapshotVar

T0 = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
VARS = (SnapshotVar("API_URL", "env_1", "encrypted", ("production",), "https://api.shop.test/v2"),
        SnapshotVar("PAYMENT_SECRET", "env_2", "sensitive", ("production", "preview"), None))


class SnapshotContract:
    def keyless(self) -> EnvSnapshots:
        raise NotImplementedError

    def test_a_saved_snapshot_opens_as_it_was(self, snapshots: EnvSnapshots) -> None:
        info = snapshots.save("prj", T0, "scheduled", VARS)
        assert (info.project, info.taken_at, info.reason, info.variables, info.unreadable) == \
            ("prj", T0, "scheduled", 2, 1)
        opened = snapshots.load(info.id)
        assert opened is not None and opened.info == info and opened.vars == VARS
        assert snapshots.load(info.id + 1000) is None

    def test_newest_first_per_project(self, snapshots: EnvSnapshots) -> None:
        first = snapshots.save("prj", T0, "scheduled", VARS)
        snapshots.save("other", T0, "scheduled", VARS[:1])
        second = snapshots.save("prj", T0 + timedelta(hours=1), "before RB-1", VARS[:1])
        assert [s.id for s in snapshots.snapshots("prj", 10)] == [second.id, first.id]
        assert [s.id for s in snapshots.snapshots("prj", 1)] == [second.id]
        assert snapshots.snapshots("nothing", 10) == []

    def test_last_checked_moves_with_saves_and_touches_never_back(self, snapshots: EnvSnapshots) -> None:
        assert snapshots.last_checked("prj") is None
        info = snapshots.save("prj", T0, "scheduled", VARS)
        assert snapshots.last_checked("prj") == T0
        snapshots.touch(info.id, T0 + timedelta(hours=2))
        snapshots.touch(info.id, T0 + timedelta(hours=1))
        assert snapshots.last_checked("prj") == T0 + timedelta(hours=2)
        assert snapshots.snapshots("prj", 10)[0].taken_at == T0  # a touch is not a new snapshot

    def test_fingerprints_tell_values_apart_without_showing_them(self, snapshots: EnvSnapshots) -> None:
        a, b = (snapshots.fingerprint("prj/API_URL", "https://api.shop.test/v2"),
                snapshots.fingerprint("prj/API_URL", "https://api.shop.test/v3"))
        assert a == snapshots.fingerprint("prj/API_URL", "https://api.shop.test/v2") and a != b and len(a) == 8
        assert snapshots.fingerprint("prj/OTHER_URL", "https://api.shop.test/v2") != a  # not linkable across keys

    def test_without_a_key_it_says_so_and_keeps_nothing(self, snapshots: EnvSnapshots) -> None:
        keyless = self.keyless()
        assert "ROLLBOT_SECRET_KEY" in (keyless.unavailable() or "")
        assert snapshots.unavailable() is None
        with pytest.raises(SnapshotUnreadable):
            keyless.save("prj", T0, "scheduled", VARS)
        assert keyless.snapshots("prj", 10) == []
