-- Where a crashed export resumes: the keyset position after its last durable part.
ALTER TABLE bulk_operations ADD COLUMN checkpoint jsonb;
