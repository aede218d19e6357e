"""The sandbox's team and policy, shared by `rollbot dev` and the tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date

CHANNEL = "C01INCIDENTS"
PROJECT = "prj_demo"
ALICE, BOB, CAROL, DAN = "U01ALICE", "U01BOB", "U01CAROL", "U01DAN"
USERS = {  # name -> (user id, what they are in the sandbox policy)
    "alice": (ALICE, "engineer"),
    "bob": (BOB, "engineer, not an approver for prod"),
    "carol": (CAROL, "lead, approves prod rollbacks"),
    "dan": (DAN, "dba"),
}

_POLICY = """# The sandbox's policy (written by `rollbot dev` and the tests).
[roles]
engineer = {{ users = ["U01ALICE", "U01BOB"], groups = {engineer_groups} }}
lead     = {{ users = ["U01CAROL"], groups = {lead_groups} }}
dba      = {{ users = ["U01DAN"] }}

[scheduler]
tick = "1s"

[environments.prod]
aliases = ["production"]
channel = "{channel}"
notify = ["S01ONCALL"]
vercel_project = "{project}"
edge_config = "ecfg_demo"
flags = {{ promo_banner = {{ off = "" }} }}
env_snapshot_every = "1h"
database_url_env = "DEMO_DATABASE_URL"
migrations_dir = {migrations}
backup_dir = {backups}
health_checks = [{health}]
monitor = ["5m", "10m", "15m"]
approval_timeout = "30m"

[environments.prod.policy]
requesters = ["engineer", "lead"]
self_approval = false
code = {{ approvers = ["lead"], approvals = {approvals} }}
flag = {{ approvers = ["lead"], approvals = 1 }}
env = {{ approvers = ["lead"], approvals = 1 }}
database = {{ approvers = ["dba", "lead"], approvals = 2 }}
"""


STAGING_PROJECT = "prj_staging"

# `rollbot dev` only: a staging environment to drill on, and the drill and review reminders, in
# the channel the console shows. The procedure counts as reviewed the day `dev` starts, so
# `time +90d` brings its review reminder (and the drill reminder's weekly repeat).
_DRILLS = """
[drills]
every = "91d"
channel = "{channel}"
procedure_reviewed = {reviewed}
review_every = "90d"
procedure_url = "https://wiki.demo-shop.test/rollback-procedure"
remind_every = "7d"

[environments.staging]
channel = "{channel}"
vercel_project = "{project}"
monitor = ["5m"]
"""


def sandbox_policy(health_url: str, backup_dir: str, *, approvals: int = 1, lead_groups: Sequence[str] = (),
                   engineer_groups: Sequence[str] = (), drills_reviewed: date | None = None) -> str:
    """The policy file text: prod, code, flag and env rollbacks approved by a lead, database ones by
    a dba and a lead (the demo database `DEMO_DATABASE_URL`, its migrations in
    sandbox/demo_migrations, backups in ``backup_dir``), env-var snapshots hourly, reminders at
    5/10/15 min. With ``drills_reviewed``, also ``[drills]`` and a staging environment (its own
    Vercel project, ``STAGING_PROJECT``)."""
    from sandbox.demo_db import DEMO_MIGRATIONS

    text = _POLICY.format(channel=CHANNEL, project=PROJECT, health=json.dumps(health_url), approvals=approvals,
                          lead_groups=json.dumps(list(lead_groups)), engineer_groups=json.dumps(list(engineer_groups)),
                          migrations=json.dumps(str(DEMO_MIGRATIONS)), backups=json.dumps(backup_dir))
    if drills_reviewed is not None:
        text += _DRILLS.format(channel=CHANNEL, reviewed=drills_reviewed.isoformat(), project=STAGING_PROJECT)
    return text
