-- A drill: the whole flow rehearsed on a non-production environment, kept out of "last rollback".
ALTER TABLE incidents ADD COLUMN drill boolean NOT NULL DEFAULT false;
