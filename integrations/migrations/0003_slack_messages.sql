-- The ledger of every Slack message Rollbot posts about an incident, by its identity key (the
-- same key travels in the message's Slack metadata).
--   state 'posting', claimed_at set:  an attempt is in flight since claimed_at;
--   state 'posting', claimed_at NULL: an attempt's outcome is unknown and nobody is settling it
--                                     (the next attempt reads Slack back before posting);
--   state 'posted':                   done, at ts.
-- first_attempt_at bounds how far back a read-back searches the channel.
CREATE TABLE slack_messages (
    incident_id      bigint      NOT NULL REFERENCES incidents (id),
    key              text        NOT NULL,
    state            text        NOT NULL CHECK (state IN ('posting', 'posted')),
    ts               text,
    first_attempt_at timestamptz NOT NULL,
    claimed_at       timestamptz,
    PRIMARY KEY (incident_id, key)
);
