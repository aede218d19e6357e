-- A rollback request is planned by the worker from a durable `request` job the web process wrote
-- before acknowledging. The incident records that job, once: a job run again after a worker died
-- mid-plan finds its incident instead of planning a second one.
ALTER TABLE incidents ADD COLUMN request_job bigint UNIQUE;
