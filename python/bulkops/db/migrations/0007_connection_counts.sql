-- Lines per connection of the query, in the file's order: [{"path", "type", "objectCount"}].
-- Set when an operation ends with a file (COMPLETED, or FAILED with partial data); clients
-- reconcile what they read per connection, and `bulkops export --nest` splits the file by it.
ALTER TABLE bulk_operations ADD COLUMN connections jsonb;
