"""`rollbot report RB-N`: one incident as Markdown or JSON; `rollbot rotate-secret-key`: the stored
env-var snapshots re-encrypted with the newest key."""

from __future__ import annotations

import json
import re
import sys

from bot.bootstrap import build_kinds, vercel_client
from bot.config_file import ConfigError
from bot.settings import Settings, secret
from handlers.env_snapshots import SnapshotUnreadable
from handlers.kind import KindRegistry
from handlers.summary import build_summary, render_markdown, with_follow_ups
from integrations.pg_store import PostgresStore


def print_report(settings: Settings, ref: str, fmt: str) -> int:
    match = re.fullmatch(r"(?:RB-)?(\d+)", ref.strip(), re.IGNORECASE)
    if not match:
        print(f"rollbot: {ref!r} is not an incident reference; write it like RB-12", file=sys.stderr)
        return 2
    if not settings.database_url:
        raise ConfigError("DATABASE_URL is not set")
    vercel = vercel_client(settings)  # the kinds need their adapters; a report calls none of them
    registry: list[KindRegistry] = []  # the store reads plans with the kinds, which need its pool
    store = PostgresStore(secret(settings.database_url), lambda data: registry[0].load_plan(data), max_size=1)
    kinds = build_kinds(settings, vercel, store)
    registry.append(kinds)
    try:
        incident = store.get(int(match.group(1)))
        if incident is None:
            print(f"rollbot: RB-{match.group(1)} does not exist", file=sys.stderr)
            return 1
        summary = store.summary(incident.id) or build_summary(
            incident, kinds[incident.kind], store.steps(incident.id), store.audit_log(incident.id)
        )
        summary = with_follow_ups(summary, store.follow_ups(incident.id))  # as they stand now: done since, or not
        entries = store.audit_log(incident.id)
        if fmt == "json":
            audit = [{"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "outcome": e.outcome,
                      "detail": e.detail} for e in entries]
            print(json.dumps({**summary.to_json(), "audit_log": audit}, indent=2, default=str))
        else:
            print(render_markdown(summary), end="")
            print("\n## Audit log\n")
            for e in entries:
                why = f" — {e.detail['reason']}" if e.detail.get("reason") else ""
                print(f"- {e.at.isoformat()} {e.actor} {e.action}: {e.outcome}{why}")
        return 0
    finally:
        store.close()
        vercel.close()


def rotate_snapshots(settings: Settings) -> int:
    """Re-seal every env-var snapshot with the first key of ROLLBOT_SECRET_KEY (put a new key first,
    run this, then drop the old key)."""
    from integrations.pg_snapshots import PostgresSnapshots

    if not settings.database_url:
        raise ConfigError("DATABASE_URL is not set")
    if not settings.rollbot_secret_key:
        raise ConfigError("ROLLBOT_SECRET_KEY is not set; make one with `rollbot secret-key`")
    store = PostgresStore(secret(settings.database_url), lambda data: None, max_size=1)  # type: ignore[arg-type,return-value]
    try:
        snapshots = PostgresSnapshots(store.pool, secret(settings.rollbot_secret_key))
        if snapshots.unavailable():
            raise ConfigError(str(snapshots.unavailable()))
        try:
            count = snapshots.rotate()
        except SnapshotUnreadable as error:
            raise ConfigError(f"{error.message}; nothing was changed") from None
    finally:
        store.close()
    print(f"re-encrypted {count} env-var snapshot(s) with the first key; the other keys can be dropped now")
    return 0
