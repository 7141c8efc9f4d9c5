-- Which worker runs an operation (host:pid), for operators and for crash tests.
ALTER TABLE bulk_operations ADD COLUMN worker_id text;
