-- The ledger of the standing reminders (the rollback drill, the procedure's review), which belong
-- to no incident: reminder number seq of a series ('drill', 'review'), with the same states as
-- slack_messages. The identity a message carries in its Slack metadata is the series, the number
-- and first_attempt_at (which also bounds how far back a read-back searches the channel).
CREATE TABLE standing_messages (
    series           text        NOT NULL,
    seq              integer     NOT NULL CHECK (seq > 0),
    state            text        NOT NULL CHECK (state IN ('posting', 'posted')),
    ts               text,
    first_attempt_at timestamptz NOT NULL,
    claimed_at       timestamptz,
    posted_at        timestamptz,          -- when it was known to be in Slack (posted, or adopted by a read-back)
    PRIMARY KEY (series, seq)
);
