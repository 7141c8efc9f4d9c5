-- Tenants, API tokens and the exportable data of domain.md.
-- Every tenant-owned table carries tenant_id NOT NULL and a (tenant_id, sort key, id) index:
-- the keyset order of its connection, shared by the sync API and the bulk planner.

CREATE TABLE tenants (
    id                             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                           text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    rate_limit_per_minute          integer NOT NULL DEFAULT 100 CHECK (rate_limit_per_minute > 0),
    rate_limit_burst               integer NOT NULL DEFAULT 20 CHECK (rate_limit_burst > 0),
    max_concurrent_bulk_operations integer NOT NULL DEFAULT 3 CHECK (max_concurrent_bulk_operations >= 0),
    created_at                     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    prefix       text NOT NULL,                -- the visible start of the token, for lookup and display
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_prefix ON api_tokens (prefix);

CREATE TABLE streams (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    stream_uuid uuid NOT NULL DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    description text,
    playback_id text NOT NULL,
    record      boolean NOT NULL DEFAULT false,
    ingest_mode text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (tenant_id, id),                   -- target of the children's (tenant_id, stream_id) keys
    UNIQUE (stream_uuid)
);
CREATE INDEX streams_keyset ON streams (tenant_id, created_at, id);

CREATE TABLE viewer_sessions (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id          bigint NOT NULL,
    session_id         uuid NOT NULL DEFAULT gen_random_uuid(),
    stream_id          bigint NOT NULL,
    node_id            text NOT NULL,
    connected_at       timestamptz NOT NULL,
    disconnected_at    timestamptz,
    connector          text NOT NULL,
    country_code       text,
    city               text,
    latitude           double precision,
    longitude          double precision,
    duration_seconds   integer,
    bytes_up           bigint NOT NULL DEFAULT 0,
    bytes_down         bigint NOT NULL DEFAULT 0,
    connection_quality double precision,
    buffer_health      double precision,
    FOREIGN KEY (tenant_id, stream_id) REFERENCES streams (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX viewer_sessions_keyset ON viewer_sessions (tenant_id, connected_at, id);
CREATE INDEX viewer_sessions_by_stream ON viewer_sessions (tenant_id, stream_id, connected_at, id);

CREATE TABLE clips (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL,
    clip_hash    text NOT NULL,
    playback_id  text NOT NULL,
    stream_id    bigint NOT NULL,
    title        text NOT NULL,
    description  text,
    start_time   timestamptz NOT NULL,
    duration     double precision NOT NULL,
    size_bytes   bigint,
    status       text NOT NULL,
    created_at   timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, stream_id) REFERENCES streams (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX clips_keyset ON clips (tenant_id, created_at, id);
CREATE INDEX clips_by_stream ON clips (tenant_id, stream_id, created_at, id);

CREATE TABLE usage_records (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    usage_type   text NOT NULL,
    usage_value  double precision NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    granularity  text NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX usage_records_keyset ON usage_records (tenant_id, period_start, id);

CREATE TABLE audit_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event_type    text NOT NULL,
    actor_type    text NOT NULL,
    actor_id      text NOT NULL,
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    ip            inet,
    payload       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL
);
CREATE INDEX audit_events_keyset ON audit_events (tenant_id, created_at, id);

CREATE TABLE stream_analytics_daily (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id        bigint NOT NULL,
    stream_id        bigint NOT NULL,
    day              date NOT NULL,
    total_views      bigint NOT NULL,
    unique_viewers   bigint NOT NULL,
    unique_countries integer NOT NULL,
    egress_bytes     bigint NOT NULL,
    FOREIGN KEY (tenant_id, stream_id) REFERENCES streams (tenant_id, id) ON DELETE CASCADE,
    UNIQUE (tenant_id, stream_id, day)
);
CREATE INDEX stream_analytics_daily_keyset ON stream_analytics_daily (tenant_id, day, id);
