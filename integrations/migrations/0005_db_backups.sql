-- Backups of target databases (pg_dump -Fc files on the bot's disk) taken before database
-- rollbacks. `database` is the name of the env var holding the target's URL, never the URL.
-- `versions`: the target's migration history when it was taken. A pruned backup keeps its row
-- (for the audit trail) with pruned_at set; its file is gone.
CREATE TABLE db_backups (
    id             bigserial   PRIMARY KEY,
    env            text        NOT NULL,
    database       text        NOT NULL,
    path           text        NOT NULL,
    size           bigint      NOT NULL CHECK (size > 0),
    sha256         text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    taken_at       timestamptz NOT NULL,
    duration       interval    NOT NULL,
    server_version text        NOT NULL,
    tool_version   text        NOT NULL,
    reason         text        NOT NULL,
    incident_id    bigint,
    versions       text[]      NOT NULL DEFAULT '{}',
    pruned_at      timestamptz
);
CREATE INDEX db_backups_newest ON db_backups (env, taken_at DESC, id DESC) WHERE pruned_at IS NULL;
