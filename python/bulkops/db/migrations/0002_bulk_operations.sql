-- Bulk operations and the transactional outbox that hands them to Kafka.

CREATE TABLE bulk_operations (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id            bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type                 text NOT NULL DEFAULT 'QUERY' CHECK (type IN ('QUERY', 'MUTATION')),
    status               text NOT NULL DEFAULT 'CREATED' CHECK (status IN
                           ('CREATED', 'RUNNING', 'COMPLETED', 'CANCELING', 'CANCELED', 'FAILED', 'EXPIRED')),
    query                text NOT NULL,
    error_code           text,
    error_message        text,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at           timestamptz,
    completed_at         timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at         timestamptz,
    attempts             integer NOT NULL DEFAULT 0,
    object_count         bigint NOT NULL DEFAULT 0,
    root_object_count    bigint NOT NULL DEFAULT 0,
    expected_object_count bigint,            -- counted in the export's snapshot: percent done
    file_size            bigint NOT NULL DEFAULT 0,
    sha256               text,
    storage_url          text,               -- the object; null when there is none
    partial              boolean NOT NULL DEFAULT false, -- the object is partial data of a failure
    url_expires_at       timestamptz,
    snapshot_at          timestamptz
);
CREATE INDEX bulk_operations_by_tenant ON bulk_operations (tenant_id, created_at DESC, id DESC);
CREATE INDEX bulk_operations_active ON bulk_operations (tenant_id)
    WHERE status IN ('CREATED', 'RUNNING', 'CANCELING');
CREATE INDEX bulk_operations_expiring ON bulk_operations (url_expires_at)
    WHERE storage_url IS NOT NULL;

CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        text NOT NULL,
    key          text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;

-- NULL: the deployment's default (BULKOPS_MAX_CONCURRENT_PER_TENANT); a number overrides it.
ALTER TABLE tenants ALTER COLUMN max_concurrent_bulk_operations DROP NOT NULL,
                    ALTER COLUMN max_concurrent_bulk_operations SET DEFAULT NULL;
