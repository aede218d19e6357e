-- The decision matrix's row an incident was started from (`/rollback decide`): the issue type and
-- severity chosen, so its time to rollback is measured against that row's target. NULL when the
-- rollback was requested directly.
ALTER TABLE incidents ADD COLUMN issue text, ADD COLUMN severity text;
