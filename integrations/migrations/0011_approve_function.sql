-- An Approve click is recorded before Slack gets its ack, so the approval's transaction is on the
-- click's path: one function call is one round trip where the same work as separate statements
-- took nine (and, under load, each round trip also waits for a CPU). It does what
-- integrations/pg_store.py's approve describes; tests/store_contract.py holds it to the in-memory
-- store's behaviour.
CREATE OR REPLACE FUNCTION rollbot_approve(
    p_incident bigint, p_approver text, p_plan_hash text, p_at timestamptz, p_required text[],
    p_announce_kind text, p_announce_due timestamptz, p_announce jsonb, p_channel text)
RETURNS TABLE (recorded boolean, decided boolean) LANGUAGE plpgsql AS $$
DECLARE
    inc incidents%ROWTYPE;
    counted text[];
    kinds text[] := '{}';
BEGIN
    recorded := false;
    decided := false;
    SELECT * INTO inc FROM incidents WHERE id = p_incident FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NEXT;
        RETURN;
    END IF;
    IF inc.status = 'pending' AND inc.plan_hash = p_plan_hash AND inc.expires_at > p_at
       AND NOT EXISTS (SELECT 1 FROM unnest(p_required) AS k
                       WHERE (inc.checklist -> k) IS DISTINCT FROM 'true'::jsonb) THEN
        INSERT INTO approvals (incident_id, approver, plan_hash, at)
            VALUES (p_incident, p_approver, p_plan_hash, p_at) ON CONFLICT DO NOTHING;
        recorded := FOUND;
    END IF;
    IF recorded THEN
        SELECT array_agg(a.approver ORDER BY a.at, a.approver) INTO counted
            FROM approvals a WHERE a.incident_id = p_incident AND a.plan_hash = p_plan_hash;
        INSERT INTO audit_log (at, incident_id, actor, action, outcome, detail)
            VALUES (p_at, p_incident, p_approver, 'approve', 'ok', jsonb_build_object(
                'plan_hash', p_plan_hash, 'count', cardinality(counted), 'needed', inc.approvals_needed));
        IF cardinality(counted) >= inc.approvals_needed THEN
            UPDATE incidents SET status = 'executing', decided_by = p_approver, decided_at = p_at,
                   exec_owner = NULL, exec_lease_until = NULL
             WHERE id = p_incident AND status = 'pending';
            INSERT INTO due_jobs (incident_id, kind, due_at, payload)
                VALUES (p_incident, 'execute', p_at, jsonb_build_object('plan_hash', p_plan_hash));
            INSERT INTO audit_log (at, incident_id, actor, action, outcome, detail)
                VALUES (p_at, p_incident, 'rollbot', 'approved', 'ok', jsonb_build_object('approvers', to_jsonb(counted)));
            UPDATE due_jobs SET status = 'cancelled' WHERE incident_id = p_incident AND kind = 'expire' AND status = 'due';
            decided := true;
            kinds := kinds || 'execute'::text;
        END IF;
        IF p_announce IS NOT NULL THEN  -- the click's redraw, for the worker: with the approval or not at all
            INSERT INTO due_jobs (incident_id, kind, due_at, payload)
                VALUES (p_incident, p_announce_kind, p_announce_due, p_announce || jsonb_build_object('decided', decided));
            kinds := kinds || p_announce_kind;
        END IF;
        IF cardinality(kinds) > 0 THEN  -- wake the workers (delivered at commit)
            PERFORM pg_notify(p_channel, array_to_string(ARRAY(SELECT DISTINCT k FROM unnest(kinds) AS k ORDER BY 1), ','));
        END IF;
    END IF;
    RETURN NEXT;
END $$;
