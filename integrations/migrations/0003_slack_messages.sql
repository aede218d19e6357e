-- The ledger of every Slack message Rollbot posts about an incident, by its identity key (the
-- same key travels in the message's Slack metadata). 'posting': a post was tried and its outcome
-- is not known yet (in flight, a timeout, a crash), so the next attempt reads Slack back before
-- posting; 'posted': done, at ts.
CREATE TABLE slack_messages (
    incident_id  bigint      NOT NULL REFERENCES incidents (id),
    key          text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('posting', 'posted')),
    ts           text,
    attempted_at timestamptz NOT NULL,
    PRIMARY KEY (incident_id, key)
);
