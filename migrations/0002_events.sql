-- Events grow: schema versions, expiry, cancellation; producers get idempotent POSTs;
-- thin payload fetches are recorded.

ALTER TABLE events
    ADD COLUMN schema_version integer,      -- the event type's schema version it was checked against
    ADD COLUMN expires_at timestamptz,      -- deliveries not done by then are cancelled
    ADD COLUMN cancelled_at timestamptz;

-- An endpoint may pin a schema version: it then receives only events of that version.
ALTER TABLE endpoints ADD COLUMN schema_version integer CHECK (schema_version > 0);

CREATE INDEX events_tenant_type_idx ON events (tenant_id, type, id DESC);
CREATE INDEX events_expiring_idx ON events (expires_at)
    WHERE expires_at IS NOT NULL AND cancelled_at IS NULL;

-- Idempotency-Key on POSTs that create something: the first response is kept for 24 hours
-- and replayed to a retry with the same body; another body under the key is a conflict.
CREATE TABLE idempotency_keys (
    tenant_id     text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    key           text NOT NULL,
    route         text NOT NULL,
    request_hash  bytea NOT NULL,
    status        integer,          -- NULL while the first request is still being handled
    response      bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_age_idx ON idempotency_keys (created_at);

-- Each fetch of a thin payload's signed link: who (which endpoint's link), when, from where.
CREATE TABLE event_fetches (
    id           bigserial PRIMARY KEY,
    event_id     text NOT NULL REFERENCES events ON DELETE CASCADE,
    endpoint_id  text REFERENCES endpoints ON DELETE SET NULL,
    address      text NOT NULL,
    fetched_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_fetches_event_idx ON event_fetches (event_id, id);
