-- Times an operation gave its worker slot back at a checkpoint (time slicing): these are
-- not failures, so the reaper's attempt limit does not count them.
ALTER TABLE bulk_operations ADD COLUMN slices integer NOT NULL DEFAULT 0;
