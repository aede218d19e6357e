-- Signed Slack requests already acted on, by a hash of their signature: a replay inside the
-- 5-minute window is dropped even when Redis (the fast filter) was flushed. Rows older than the
-- window are deleted as new ones arrive.
CREATE TABLE seen_requests (
    key     text        PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX seen_requests_age ON seen_requests (seen_at);
