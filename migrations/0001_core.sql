-- The core path: tenants and keys, subscribers and endpoints, events, and the delivery
-- record (lanes, deliveries, attempts). Postgres is the truth for every due delivery.

-- Prefixed, time-sortable ids: prefix, '_', 12 hex digits of Unix milliseconds, 20 random hex
-- digits. Generated in SQL so one statement can fan an event out to many deliveries.
CREATE FUNCTION hookline_id(prefix text) RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT prefix || '_'
        || lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
        || substr(md5(gen_random_uuid()::text), 1, 20)
$$;

CREATE TABLE tenants (
    id          text PRIMARY KEY DEFAULT hookline_id('ten'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 of the key: keys are 32 random bytes, so a fast hash is
-- enough (no dictionary to guess from) and lets every request look one up by index.
CREATE TABLE api_keys (
    id          text PRIMARY KEY DEFAULT hookline_id('key'),
    tenant_id   text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    key_hash    bytea NOT NULL UNIQUE,
    prefix      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE users (
    id             text PRIMARY KEY DEFAULT hookline_id('usr'),
    tenant_id      text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    email          text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscribers (
    id          text PRIMARY KEY DEFAULT hookline_id('sub'),
    tenant_id   text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    uid         text NOT NULL,
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, uid)
);

CREATE TABLE endpoints (
    id             text PRIMARY KEY DEFAULT hookline_id('ep'),
    tenant_id      text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    subscriber_id  text NOT NULL REFERENCES subscribers ON DELETE CASCADE,
    url            text NOT NULL,
    description    text NOT NULL DEFAULT '',
    event_types    text[],                       -- NULL: every type
    ordering       text NOT NULL DEFAULT 'strict' CHECK (ordering IN ('strict', 'keyed', 'none')),
    on_exhausted   text NOT NULL DEFAULT 'dead_letter' CHECK (on_exhausted IN ('dead_letter', 'pause')),
    payload        text NOT NULL DEFAULT 'thin' CHECK (payload IN ('thin', 'full')),
    format         text NOT NULL DEFAULT 'standard' CHECK (format IN ('standard', 'cloudevents')),
    timeout        real CHECK (timeout > 0 AND timeout <= 30),   -- NULL: the global default
    rate_limit     integer CHECK (rate_limit > 0),
    max_in_flight  integer NOT NULL DEFAULT 1 CHECK (max_in_flight BETWEEN 1 AND 1000),
    headers        jsonb NOT NULL DEFAULT '{}',
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'disabled')),
    status_reason  text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoints_tenant_idx ON endpoints (tenant_id, id);
CREATE INDEX endpoints_subscriber_idx ON endpoints (subscriber_id);

-- Signing secrets: the newest signs; older ones keep signing until expires_at (rotation).
CREATE TABLE endpoint_secrets (
    endpoint_id  text NOT NULL REFERENCES endpoints ON DELETE CASCADE,
    secret       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at   timestamptz,
    PRIMARY KEY (endpoint_id, created_at)
);

CREATE TABLE events (
    id             text PRIMARY KEY DEFAULT hookline_id('evt'),
    tenant_id      text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    producer_id    text,
    type           text NOT NULL,
    subject        text,
    url            text,
    ordering_key   text,
    subscriber_id  text REFERENCES subscribers ON DELETE SET NULL,
    data           jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, producer_id)
);
CREATE INDEX events_tenant_idx ON events (tenant_id, id DESC);

-- A lane is one ordering unit: the endpoint (strict), the endpoint and an ordering key
-- (keyed), or one event (none). Workers claim lanes, never bare deliveries, so a lane has at
-- most one attempt in flight and its head goes first.
--   next_seq     the last sequence number given out; taken under the row lock that the
--                ingest transaction holds until commit, so numbers follow commit order
--   ready_at     when the head is due; NULL when the lane has nothing to send
--   lease_until  set while a worker holds the lane; a dead worker's lease just runs out
--   lease_no     bumped at every claim; a result is recorded only by the current holder
CREATE TABLE lanes (
    id           bigserial PRIMARY KEY,
    endpoint_id  text NOT NULL REFERENCES endpoints ON DELETE CASCADE,
    key          text NOT NULL,
    next_seq     bigint NOT NULL DEFAULT 1,
    ready_at     timestamptz,
    lease_until  timestamptz,
    lease_no     bigint NOT NULL DEFAULT 0,
    UNIQUE (endpoint_id, key)
);
CREATE INDEX lanes_ready_idx ON lanes (ready_at) WHERE ready_at IS NOT NULL;

CREATE TABLE deliveries (
    id               text PRIMARY KEY DEFAULT hookline_id('dlv'),
    tenant_id        text NOT NULL,
    event_id         text NOT NULL REFERENCES events ON DELETE CASCADE,
    endpoint_id      text NOT NULL REFERENCES endpoints ON DELETE CASCADE,
    lane_id          bigint NOT NULL REFERENCES lanes ON DELETE CASCADE,
    seq              bigint NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'retrying', 'succeeded', 'failed', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0,
    -- retries left on the automatic schedule; a manual retry allows exactly one attempt
    retries_used     integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX deliveries_head_idx ON deliveries (lane_id, seq)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_tenant_idx ON deliveries (tenant_id, id DESC);
CREATE INDEX deliveries_endpoint_idx ON deliveries (endpoint_id, id DESC);
CREATE INDEX deliveries_event_idx ON deliveries (event_id);

-- Append-only: one row per HTTP try, never updated (the audit trail).
CREATE TABLE attempts (
    id                text PRIMARY KEY DEFAULT hookline_id('att'),
    delivery_id       text NOT NULL REFERENCES deliveries ON DELETE CASCADE,
    tenant_id         text NOT NULL,
    n                 integer NOT NULL,
    started_at        timestamptz NOT NULL,
    duration_ms       real NOT NULL,
    status_code       integer,
    error             text,
    request_headers   jsonb NOT NULL DEFAULT '{}',
    response_headers  jsonb NOT NULL DEFAULT '{}',
    response_body     text NOT NULL DEFAULT '',
    next_attempt_at   timestamptz
);
CREATE INDEX attempts_delivery_idx ON attempts (delivery_id, n);
