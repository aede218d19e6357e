-- Rollbot's own schema, version 1.

CREATE TABLE incidents (
    id               bigserial PRIMARY KEY,
    kind             text        NOT NULL,
    env              text        NOT NULL,
    status           text        NOT NULL,
    requester        text        NOT NULL,
    reason           text        NOT NULL DEFAULT '',
    plan             jsonb       NOT NULL,
    plan_hash        text        NOT NULL,
    approvals_needed integer     NOT NULL CHECK (approvals_needed >= 1),
    checklist        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    channel          text,
    root_ts          text,
    progress_ts      text,
    summary_ts       text,
    decided_by       text,
    decided_at       timestamptz,
    decision_note    text,
    rolled_back_at   timestamptz,
    verified_at      timestamptz,
    finished_at      timestamptz,
    failure          text,
    resolved_by      text,
    resolved_at      timestamptz,
    root_cause       text,
    lessons          text,
    summary          jsonb,
    exec_owner       text,            -- execution lease: who may call the provider now
    exec_lease_until timestamptz,
    CHECK (status IN ('pending', 'executing', 'monitoring', 'resolved', 'denied', 'expired', 'cancelled', 'failed'))
);

-- The lock per environment and rollback type: at most one pending or executing incident.
CREATE UNIQUE INDEX incidents_one_running ON incidents (env, kind) WHERE status IN ('pending', 'executing');
CREATE INDEX incidents_open ON incidents (status) WHERE status IN ('pending', 'executing', 'monitoring');

CREATE TABLE approvals (
    incident_id bigint      NOT NULL REFERENCES incidents (id),
    approver    text        NOT NULL,
    plan_hash   text        NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (incident_id, approver, plan_hash)
);

CREATE TABLE step_runs (
    incident_id bigint      NOT NULL REFERENCES incidents (id),
    name        text        NOT NULL,
    status      text        NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    detail      text        NOT NULL DEFAULT '',
    PRIMARY KEY (incident_id, name)
);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    incident_id bigint,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    outcome     text        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_incident ON audit_log (incident_id, id);

-- Append-only: the database itself refuses to change or remove an audit record.
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

-- Due work (reminders, expiries), claimed by the worker with FOR UPDATE SKIP LOCKED.
CREATE TABLE due_jobs (
    id          bigserial PRIMARY KEY,
    incident_id bigint REFERENCES incidents (id),
    kind        text        NOT NULL,
    due_at      timestamptz NOT NULL,
    payload     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status      text        NOT NULL DEFAULT 'due' CHECK (status IN ('due', 'running', 'done', 'cancelled', 'dead')),
    attempts    integer     NOT NULL DEFAULT 0,
    claimed_by  text,
    lease_until timestamptz,
    outcome     text,
    finished_at timestamptz
);
CREATE INDEX due_jobs_ready ON due_jobs (due_at) WHERE status IN ('due', 'running');
