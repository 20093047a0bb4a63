-- The floors the benchmark holds hookline to: the cheapest way anyone could do the same
-- durable work. Tables of their own, in the benchmark's scratch database.

-- name: create_outbox
-- A plain transactional outbox: an event row and a delivery row, each with its key.
CREATE TABLE IF NOT EXISTS floor_events (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    type        text NOT NULL,
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS floor_deliveries (
    id          bigserial PRIMARY KEY,
    event_id    text NOT NULL,
    endpoint_id text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- name: outbox_insert
-- One event and its one delivery, in one statement (one commit).
-- $1 event id, $2 tenant id, $3 type, $4 data, $5 endpoint id
WITH ev AS (
    INSERT INTO floor_events (id, tenant_id, type, data) VALUES ($1, $2, $3, $4)
    RETURNING id
)
INSERT INTO floor_deliveries (event_id, endpoint_id) SELECT id, $5 FROM ev;

-- name: truncate_outbox
TRUNCATE floor_events, floor_deliveries;
