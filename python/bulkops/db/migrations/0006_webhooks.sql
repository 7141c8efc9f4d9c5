-- Where a tenant's bulk_operations/finish webhooks go, and the key that signs them (HMAC, so
-- it is kept as is, not hashed). Both or neither: a URL is never called unsigned.
ALTER TABLE tenants
    ADD COLUMN webhook_url text,
    ADD COLUMN webhook_secret text,
    ADD CONSTRAINT tenants_webhook_signed CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL));
