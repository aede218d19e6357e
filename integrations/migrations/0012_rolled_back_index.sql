-- Every plan reads the environment's past rollbacks (`rolled_back_plans`: a deployment rolled
-- back from is never "last known good"), and the status, App Home and /metrics read the newest
-- rollback. Without these indexes both scanned the whole incidents table, which only grows.
CREATE INDEX incidents_rolled_back_by_env ON incidents (env, rolled_back_at DESC) WHERE rolled_back_at IS NOT NULL;
CREATE INDEX incidents_rolled_back ON incidents (drill, rolled_back_at DESC) WHERE rolled_back_at IS NOT NULL;
