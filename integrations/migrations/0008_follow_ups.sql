-- The follow-ups of a resolved incident (the runbook's "Documentation Updates"): what must change
-- in the runbook or docs and which tests to add, each with an owner. Written in the resolving
-- transaction; reminded by DM (due_jobs kind 'follow_up', payload {follow_up, round}) until done.
--   rounds: reminders scheduled so far; the next is scheduled only by a conditional update on it.
--   done_by/done_at: set once (UPDATE ... WHERE done_at IS NULL).
CREATE TABLE follow_ups (
    id          bigserial   PRIMARY KEY,
    incident_id bigint      NOT NULL REFERENCES incidents (id),
    position    integer     NOT NULL,
    category    text        NOT NULL CHECK (category IN ('docs', 'tests')),
    text        text        NOT NULL,
    owner       text        NOT NULL,
    created_at  timestamptz NOT NULL,
    rounds      integer     NOT NULL DEFAULT 1,
    done_by     text,
    done_at     timestamptz,
    UNIQUE (incident_id, position)
);
