"""The database kind on fakes: refusals that touch nothing, a backup first, the revert in one
transaction, failures that change nothing and say so, restores, the listing and the pruning."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from handlers import approvals, commands, decide, queries
from handlers.db import DatabaseKind
from handlers.db_plan import DatabasePlan
from handlers.db_ports import MigrationFile
from handlers.execution import execute
from handlers.kind import LeaseLost
from handlers.model import Status
from handlers.monitoring import maintenance
from handlers.ports import ProviderError
from handlers.services import Refused
from tests.fakes.db import FakeTarget, migration
from tests.fakes.world import ALICE, CAROL, DAN, FakeWorld, fake_world

ORDERS, TIER = "20261127090000", "20261128100000"


@pytest.fixture
def w(tmp_path: Path) -> FakeWorld:
    world = fake_world(tmp_path)

    def orders_reverted(target: FakeTarget) -> None:
        target.objects -= {"public.orders", "public.order_status", "public.orders_customer"}

    def tier_reverted(target: FakeTarget) -> None:
        target.columns.discard(("public.customers", "tier"))

    world.target.on_revert = {ORDERS: orders_reverted, TIER: tier_reverted}
    return world


def kind(w: FakeWorld) -> DatabaseKind:
    found = w.svc.kinds["database"]
    assert isinstance(found, DatabaseKind)
    return found


def plan_of(w: FakeWorld, **args: object) -> DatabasePlan:
    incident = w.request(ALICE, "database", **args)
    assert isinstance(incident.plan, DatabasePlan)
    return incident.plan


def approved(w: FakeWorld, **args: object) -> int:
    incident = w.request(ALICE, "database", **(args or {"version": TIER}))
    approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    assert approvals.approve(w.svc, DAN, incident.id, incident.plan_hash).decided  # two distinct approvers
    return incident.id


def untouched(w: FakeWorld) -> bool:
    return w.target.reverts == [] and w.backups.taken == [] and w.backups.restored == []


# -- the plan and its refusals ----------------------------------------------------------------


def test_the_newest_migration_is_planned_with_its_reverse_sql_bound_and_what_must_hold_after(w: FakeWorld) -> None:
    plan = plan_of(w, version=TIER)
    assert plan.action == "revert" and plan.migration is not None and plan.head == TIER
    assert plan.migration.reverse_source.startswith("the -- rollback section")
    assert [(f.check, f.target, f.column) for f in plan.facts] == [("no column", "public.customers", "tier")]
    assert (plan.lock_timeout_ms, plan.statement_timeout_ms) == (2000, 60000)
    incident = w.store.open_incidents()[0]
    assert incident.checklist["backup"] is False  # the backup is ticked when it is taken
    assert untouched(w)


def test_a_migration_a_later_one_depends_on_is_refused_naming_it(w: FakeWorld) -> None:
    w.target.history_rows.append(migration("20261128120000", "orders_note", "alter table orders add column note text"))
    with pytest.raises(Refused, match=r"later migrations depend on `20261127090000_create_orders`: "
                                      r"`20261128120000_orders_note` \(touches public.orders\)"):
        plan_of(w, version=ORDERS)
    assert untouched(w) and w.store.open_incidents() == []


def test_a_later_migration_touching_it_only_inside_a_function_body_counts(w: FakeWorld) -> None:
    w.target.history_rows.append(migration(
        "20261128120000", "order_count", "create function order_count() returns bigint language sql as "
                                         "'select count(*) from orders'"))
    with pytest.raises(Refused, match="order_count` \\(touches public.orders\\)"):
        plan_of(w, version=ORDERS)


def test_when_in_doubt_it_refuses(w: FakeWorld) -> None:
    w.target.history_rows.append(migration("20261128120000", "backfill", "DO $$ begin perform 1; end $$"))
    with pytest.raises(Refused, match="`20261128120000_backfill` \\(cannot be read for sure: a DO block"):
        plan_of(w, version=ORDERS)


def test_objects_in_the_catalogue_that_depend_on_it_are_named(w: FakeWorld) -> None:
    w.target.history_rows = [m for m in w.target.history_rows if m.version != TIER]
    w.target.catalogue = {"public.orders": ["view public.order_totals"]}
    with pytest.raises(Refused, match="objects that depend on what `20261127090000` created: view public.order_totals"):
        plan_of(w, version=ORDERS)


@pytest.mark.parametrize(("version", "message"), [
    ("20261127090001", "`20261127090001` is not a migration applied to the database. Did you mean `20261127090000`"),
    ("20261101000000", "has no reverse SQL: add `20261101000000_create_customers.down.sql` beside it"),
])
def test_unknown_or_irreversible_versions_are_refused(w: FakeWorld, version: str, message: str) -> None:
    with pytest.raises(Refused, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        plan_of(w, version=version)
    assert untouched(w)


def test_a_migration_in_the_folder_but_not_applied_is_refused(w: FakeWorld) -> None:
    w.source.files["20261129000000"] = MigrationFile("20261129000000", "next", "select 1;", "x.down.sql")
    with pytest.raises(Refused, match="is in `supabase/migrations` but is not applied"):
        plan_of(w, version="20261129000000")


def test_unusable_reverse_sql_is_refused(w: FakeWorld) -> None:
    w.source.files[TIER] = MigrationFile(TIER, "add_customer_tier", None, None, problem="line 4 is not commented out")
    with pytest.raises(Refused, match="cannot be used: line 4 is not commented out"):
        plan_of(w, version=TIER)
    w.source.files[TIER] = MigrationFile(TIER, "add_customer_tier", "alter tabel customers;", "x.down.sql")
    with pytest.raises(Refused, match="does not parse"):
        plan_of(w, version=TIER)


def test_without_a_pg_dump_that_can_back_the_server_up_it_is_refused(w: FakeWorld) -> None:
    w.backups.problem = "pg_dump 15 cannot dump a PostgreSQL 17 server"
    with pytest.raises(Refused, match="no backup can be taken first: pg_dump 15 cannot dump"):
        plan_of(w, version=TIER)


def test_a_target_that_is_not_configured_says_why(w: FakeWorld) -> None:
    w.target.missing = True
    with pytest.raises(Refused, match="PROD_DATABASE_URL is not set"):
        plan_of(w, version=TIER)


# -- execution ---------------------------------------------------------------------------------


def test_after_two_approvals_a_backup_then_one_transaction_then_verified(w: FakeWorld) -> None:
    incident_id = approved(w)
    done = execute(w.svc, incident_id)
    assert done is not None and done.status is Status.MONITORING
    [backup] = w.backups.taken
    assert backup.reason == f"before {done.ref}" and backup.incident_id == incident_id
    assert backup.versions == ("20261101000000", ORDERS, TIER)
    [(version, sql, lock, statement)] = w.target.reverts
    assert (version, sql, lock, statement) == (TIER, "alter table customers drop column tier;",
                                               timedelta(seconds=2), timedelta(minutes=1))
    assert done.checklist["backup"] is True
    [(_, result, ok)] = w.notifier.sent["verification"]
    assert ok and result.detail == f"the history row of {TIER} is gone; public.customers.tier is gone"
    log = [(e.action, e.outcome) for e in w.store.audit_log(incident_id)]
    assert log.index(("db.backup", "ok")) < log.index(("db.revert", "attempt"))
    progress = [steps for _, steps in w.notifier.sent["progress"]]
    assert any("db.backup" in s for s in progress)


def test_a_lock_timeout_changes_nothing_and_says_so_with_the_runbook(w: FakeWorld) -> None:
    w.target.script = ["timeout"]
    incident_id = approved(w)
    failed = execute(w.svc, incident_id)
    assert failed is not None and failed.status is Status.FAILED
    [(_, error, next_step)] = w.notifier.sent["failure"]
    assert "lock_timeout (2s) ran out" in error and "nothing was changed" in error and "Backup B-1 was kept" in error
    assert "never `supabase migration down` or a reset" in next_step
    assert TIER in [m.version for m in w.target.history_rows]


def test_a_commit_whose_answer_was_lost_is_read_back(w: FakeWorld) -> None:
    w.target.script = ["lost-committed"]
    incident_id = approved(w)
    assert execute(w.svc, incident_id).status is Status.MONITORING
    assert len(w.target.reverts) == 1
    # A lost answer with nothing committed fails, sending nothing again.
    w.target.history_rows.append(migration("20261128200000", "x", "alter table customers add column y text"))
    w.source.files["20261128200000"] = MigrationFile("20261128200000", "x", "alter table customers drop column y;",
                                                     "x.down.sql")
    w.target.script = ["lost-rolled-back"]
    second = approved(w, version="20261128200000")
    assert execute(w.svc, second).status is Status.FAILED and len(w.target.reverts) == 2


def test_reverse_sql_changed_after_approval_is_not_run(w: FakeWorld) -> None:
    incident_id = approved(w)
    w.source.files[TIER] = MigrationFile(TIER, "add_customer_tier", "drop table customers;", "x.down.sql")
    result = execute(w.svc, incident_id)
    assert result is not None and result.status is Status.PENDING  # re-planned: the approvals are void
    assert w.target.reverts == []


def test_a_failed_backup_changes_nothing(w: FakeWorld) -> None:
    w.backups.script = ["fail"]
    incident_id = approved(w)
    assert execute(w.svc, incident_id).status is Status.FAILED
    [(_, error, _)] = w.notifier.sent["failure"]
    assert error.startswith("the backup failed (pg_dump: error: connection to server failed); nothing was changed")
    assert w.target.reverts == []


def test_a_resumed_execution_keeps_its_backup(w: FakeWorld) -> None:
    incident_id = approved(w)
    real = w.target.revert
    calls = {"n": 0}

    def dies_once(*args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise LeaseLost()
        real(*args)  # type: ignore[arg-type]

    w.target.revert = dies_once  # type: ignore[method-assign]
    assert execute(w.svc, incident_id, heartbeat=False) is None
    w.clock.advance(timedelta(minutes=3))
    assert execute(w.svc, incident_id, resume=True, heartbeat=False).status is Status.MONITORING
    assert len(w.backups.taken) == 1


def test_a_backup_is_restored_after_a_fresh_backup_and_the_history_matches_it(w: FakeWorld) -> None:
    first = approved(w)
    assert execute(w.svc, first).status is Status.MONITORING
    w.store.transition(first, [Status.MONITORING], Status.RESOLVED)
    plan = plan_of(w, backup=1)
    assert plan.action == "restore" and plan.added == (TIER,) and plan.removed == ()
    incident = w.store.open_incidents()[0]
    approvals.approve(w.svc, CAROL, incident.id, incident.plan_hash)
    approvals.approve(w.svc, DAN, incident.id, incident.plan_hash)
    done = execute(w.svc, incident.id)
    assert done is not None and done.status is Status.MONITORING
    assert w.backups.restored == [1] and [b.reason for b in w.backups.taken] == [
        "before RB-1", f"before {done.ref}"]
    [_, (_, result, ok)] = w.notifier.sent["verification"]
    assert ok and result.detail == "the migration history matches backup B-1 (3 migrations)"


def test_a_failed_restore_changes_nothing_and_keeps_the_fresh_backup(w: FakeWorld) -> None:
    first = approved(w)
    execute(w.svc, first)
    w.store.transition(first, [Status.MONITORING], Status.RESOLVED)
    w.backups.script = ["ok", "restore-fail"]
    second = approved(w, backup=1)
    assert execute(w.svc, second).status is Status.FAILED
    [(_, error, _)] = w.notifier.sent["failure"]
    assert "it ran as one transaction, so nothing was changed. Backup B-2 of the state before was kept" in error


def test_an_unknown_backup_is_refused(w: FakeWorld) -> None:
    with pytest.raises(Refused, match="there is no backup `B-7` of \\*prod\\*"):
        plan_of(w, backup=7)


# -- the command, the listing and the upkeep --------------------------------------------------


def test_the_command_takes_a_version_a_file_stem_or_restore(w: FakeWorld) -> None:
    parse = lambda text: commands.parse(text, w.svc.policy, w.svc.kinds)  # noqa: E731
    assert parse(f"db prod {TIER}_add_customer_tier broke signups") == commands.Rollback(
        "database", "prod", "broke signups", {"version": TIER})
    assert parse("database prod restore B-3 bad data") == commands.Rollback("database", "prod", "bad data", {"backup": 3})
    assert parse("db prod list") == commands.Query("database", "prod", ("list",))
    with pytest.raises(commands.CommandError, match="needs a backup like `B-12`"):
        parse("db prod restore yesterday")
    with pytest.raises(commands.CommandError, match="is not a migration version"):
        parse("db prod add_orders")


def test_list_shows_recent_migrations_with_their_reverse_sql_and_the_backups(w: FakeWorld) -> None:
    ask = lambda: queries.answer(w.svc, ALICE, commands.Query("database", "prod", ("list",)))  # noqa: E731
    text = ask()
    assert "(by version date: the server keeps no commit times)" in text
    assert f"`{TIER}` add_customer_tier · 4h ago · reverse SQL: the -- rollback section" in text
    assert "create_orders" not in text and "create_customers" not in text  # applied more than 24 h ago
    assert "_No backups taken yet._" in text
    execute(w.svc, approved(w))
    text = ask()  # nothing in the last 24 hours now: the newest five, said so
    assert "_none in the last 24 hours; the newest five:_" in text
    assert f"`{ORDERS}` create_orders · 1d 5h ago · reverse SQL: 20261127090000_create_orders.down.sql" in text
    assert "create_customers · 27d 14h ago · no reverse SQL" in text
    assert "`B-1` 0s ago · 3.0 MB · before RB-1" in text


def test_old_backups_are_pruned_but_never_the_only_one_of_an_open_incident(w: FakeWorld) -> None:
    execute(w.svc, approved(w))  # B-1 belongs to RB-1, which is monitoring (open)
    w.clock.advance(timedelta(days=15))
    for _key, task in maintenance(w.svc):
        task()
    assert w.backups.pruned == []
    w.store.transition(1, [Status.MONITORING], Status.RESOLVED)
    for _key, task in maintenance(w.svc):
        task()
    assert w.backups.pruned == [1]


def test_a_provider_error_reading_the_target_is_a_clear_refusal(w: FakeWorld) -> None:
    def broken(database: str) -> list:  # type: ignore[type-arg]
        from handlers.db_ports import DatabaseError

        raise DatabaseError("could not connect to the target database (timeout)")

    w.target.history = broken  # type: ignore[method-assign]
    with pytest.raises(Refused, match="could not read the provider: could not connect to the target database"):
        plan_of(w, version=TIER)
    with pytest.raises(ProviderError):
        kind(w).verify(DatabasePlan(env="prod", action="revert", database="PROD_DATABASE_URL", server_version="17",
                                    head=None))


def test_reverse_sql_with_its_own_transaction_control_is_refused(w: FakeWorld) -> None:
    w.source.files[TIER] = MigrationFile(TIER, "add_customer_tier",
                                         "begin;\nalter table customers drop column tier;\ncommit;", "x.down.sql")
    with pytest.raises(Refused, match="has BEGIN/COMMIT/ROLLBACK of its own"):
        plan_of(w, version=TIER)


# -- what a reviewer broke once ----------------------------------------------------------------


def _after_first_rollback(w: FakeWorld) -> None:
    assert execute(w.svc, approved(w)).status is Status.MONITORING  # B-1, before RB-1


def test_a_resumed_restore_is_never_run_a_second_time(w: FakeWorld) -> None:
    _after_first_rollback(w)
    incident_id = approved(w, backup=1)
    real = w.backups.restore

    def dies_after_committing(*args: object) -> None:
        real(*args)  # type: ignore[arg-type]
        raise LeaseLost()

    w.backups.restore = dies_after_committing  # type: ignore[method-assign]
    assert execute(w.svc, incident_id, heartbeat=False) is None
    w.backups.restore = real  # type: ignore[method-assign]
    w.clock.advance(timedelta(minutes=3))
    done = execute(w.svc, incident_id, resume=True, heartbeat=False)
    assert done is not None and done.status is Status.MONITORING and w.backups.restored == [1]  # read back, not rerun


def test_a_restore_the_history_cannot_tell_apart_is_never_reported_done_by_reading_back(w: FakeWorld) -> None:
    _after_first_rollback(w)
    w.store.transition(1, [Status.MONITORING], Status.RESOLVED)
    first = approved(w, backup=1)
    assert execute(w.svc, first).status is Status.MONITORING  # the history is B-1's now
    w.backups.script = ["ok", "restore-lost"]
    second = approved(w, backup=1)  # the same history as now: nothing to tell the two states apart
    plan = w.store.get(second).plan
    assert isinstance(plan, DatabasePlan) and plan.added == plan.removed == ()
    failed = execute(w.svc, second)
    assert failed is not None and failed.status is Status.FAILED
    [*_, (_, error, _)] = w.notifier.sent["failure"]
    assert "whether it committed cannot be told, so it is not run again" in error


def test_a_resumed_revert_waits_for_the_earlier_transaction_and_never_sends_while_it_is_open(w: FakeWorld) -> None:
    incident_id = approved(w)
    real = w.target.revert

    def dies_mid_transaction(*args: object) -> None:
        w.target.open_transaction = True
        raise LeaseLost()

    w.target.revert = dies_mid_transaction  # type: ignore[method-assign]
    assert execute(w.svc, incident_id, heartbeat=False) is None
    w.target.revert = real  # type: ignore[method-assign]
    w.clock.advance(timedelta(minutes=3))
    failed = execute(w.svc, incident_id, resume=True, heartbeat=False)
    assert failed is not None and failed.status is Status.FAILED and w.target.reverts == []
    [(_, error, _)] = w.notifier.sent["failure"]
    assert "an earlier executor's transaction on the database is still open" in error


def test_pruning_keeps_the_newest_backup_of_an_open_incident_and_any_a_restore_names(w: FakeWorld) -> None:
    _after_first_rollback(w)  # B-1 of RB-1
    w.store.transition(1, [Status.MONITORING], Status.RESOLVED)
    pending = w.request(ALICE, "database", backup=1)  # a restore of B-1, waiting for approval
    w.clock.advance(timedelta(days=15))
    for _key, task in maintenance(w.svc):
        task()
    assert w.backups.pruned == []  # RB-1 is closed, but the pending restore names B-1
    w.store.transition(pending.id, [Status.PENDING], Status.CANCELLED)
    for _key, task in maintenance(w.svc):
        task()
    assert w.backups.pruned == [1]


@pytest.mark.parametrize(("later", "why"), [
    ("create table shop.items (id int)", "touches shop"),
    ("set search_path = app; create table t (id int)", "search_path"),
    ("select setval('orders_customer', 1)", "touches public.orders_customer"),
])
def test_dependencies_hidden_in_schemas_search_paths_and_strings_are_found(w: FakeWorld, later: str,
                                                                           why: str) -> None:
    w.target.history_rows.insert(2, migration("20261127100000", "shop_schema", "create schema shop"))
    w.target.history_rows.append(migration("20261128120000", "later", later))
    w.source.files["20261127100000"] = MigrationFile("20261127100000", "shop_schema", "drop schema shop;", "x")
    version = "20261127100000" if "shop" in later else ORDERS
    with pytest.raises(Refused, match=why):
        plan_of(w, version=version)


def test_a_renamed_object_is_still_the_migrations(w: FakeWorld) -> None:
    w.target.history_rows.append(migration("20261128110000", "rename", "alter table orders rename to purchases"))
    w.target.history_rows.append(migration("20261128120000", "later", "alter table purchases add column x int"))
    w.source.files["20261128110000"] = MigrationFile("20261128110000", "rename", "alter table purchases rename to "
                                                     "orders;", "x")
    with pytest.raises(Refused, match="touches public.purchases"):
        plan_of(w, version="20261128110000")


def test_an_empty_history_row_and_an_out_of_order_migration_are_doubts(w: FakeWorld) -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    w.target.history_rows = [migration(m.version, m.name, *m.statements, applied_at=at + timedelta(minutes=n))
                             for n, m in enumerate(w.target.history_rows)]
    # an older version, applied after the orders migration (supabase db push --include-all)
    w.target.history_rows.append(migration("20261127000000", "late", "alter table orders add column y int",
                                           applied_at=at + timedelta(hours=1)))
    with pytest.raises(Refused, match="`20261127000000_late` \\(touches public.orders\\)"):
        plan_of(w, version=ORDERS)
    w.target.history_rows = [m for m in w.target.history_rows if m.version != "20261127000000"]
    w.target.history_rows.append(migration("20261128120000", "repaired", applied_at=at + timedelta(hours=2)))
    with pytest.raises(Refused, match="records no statements"):
        plan_of(w, version=ORDERS)


def test_non_ascii_digits_are_not_a_backup(w: FakeWorld) -> None:
    with pytest.raises(commands.CommandError, match="needs a backup like"):
        commands.parse("db prod restore B-²", w.svc.policy, w.svc.kinds)


def test_what_may_have_existed_before_is_not_expected_gone_after_a_revert() -> None:
    from handlers.db_sql import effects, reverted

    forward = effects("create table if not exists audit (id int); create or replace function touch() returns int "
                      "language sql as 'select 1'; create table fresh (id int)")
    assert [e.describe() for e in reverted(forward)] == ["public.fresh is gone"]
    assert {"public.audit", "public.touch", "public.fresh"} <= forward.owned  # still the migration's, for dependents


def test_progress_notes_are_paced_for_slack() -> None:
    from handlers.db import NOTE_EVERY, _Progress

    notes: list[str] = []

    class Run:
        def note(self, name: str, detail: str) -> None:
            notes.append(detail)

    now = [100.0]
    progress = _Progress(Run(), "db.backup", lambda: now[0], lambda done, elapsed: f"{done} bytes, {elapsed}")  # type: ignore[arg-type]
    for n in range(10):  # ten chunks within a second: one note
        progress(n)
        now[0] += 0.1
    now[0] += NOTE_EVERY
    progress(2**20)
    assert notes == ["0 bytes, 0s", "1048576 bytes, 6s"]


def test_a_rollback_started_from_the_matrix_proposes_the_newest_revertible_migration(w: FakeWorld) -> None:
    data_corruption = decide.decision(w.svc, "Data corruption", None)
    assert decide.suggestions(w.svc, data_corruption, "prod") == {"database": TIER}
    execute(w.svc, approved(w))  # reverted: nothing applied in the last 24 hours any more
    assert decide.suggestions(w.svc, data_corruption, "prod") == {}


def test_the_matrix_never_proposes_a_migration_below_the_newest(w: FakeWorld) -> None:
    newest = "20261128120000"
    w.target.history_rows.append(migration(newest, "drop_legacy_flags", "create table audit_events (id int)"))
    w.source.files[newest] = MigrationFile(newest, "drop_legacy_flags", None, None)  # no reverse SQL
    assert decide.suggestions(w.svc, decide.decision(w.svc, "Data corruption", None), "prod") == {}
