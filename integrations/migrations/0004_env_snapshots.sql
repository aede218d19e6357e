-- Env-var snapshots, sealed at rest with ROLLBOT_SECRET_KEY (Fernet): `sealed` holds the
-- variables (keys, ids, types, targets and values); nothing else here is secret, and no value
-- is stored anywhere else. checked_at: when the project was last read and still matched.
CREATE TABLE env_snapshots (
    id         bigserial   PRIMARY KEY,
    project    text        NOT NULL,
    taken_at   timestamptz NOT NULL,
    checked_at timestamptz NOT NULL,
    reason     text        NOT NULL,
    variables  integer     NOT NULL,
    unreadable integer     NOT NULL,
    sealed     bytea       NOT NULL
);
CREATE INDEX env_snapshots_newest ON env_snapshots (project, id DESC);

-- The key of the values' fingerprints: random, made once, sealed like the snapshots (a rotation
-- of ROLLBOT_SECRET_KEY re-seals it, so fingerprints stay the same across a rotation).
CREATE TABLE env_fingerprint_key (
    id     integer PRIMARY KEY CHECK (id = 1),
    sealed bytea   NOT NULL
);
