-- name: create_endpoint
-- An endpoint of a subscriber with its first signing secret.
-- $1 tenant_id, $2 subscriber uid, $3 url, $4 description, $5 event_types or NULL,
-- $6 ordering, $7 on_exhausted, $8 payload, $9 format, $10 timeout or NULL,
-- $11 rate_limit or NULL, $12 max_in_flight, $13 headers, $14 secret
WITH sub AS (
    SELECT id FROM subscribers WHERE tenant_id = $1 AND uid = $2
), ep AS (
    INSERT INTO endpoints (tenant_id, subscriber_id, url, description, event_types, ordering,
                           on_exhausted, payload, format, timeout, rate_limit, max_in_flight,
                           headers)
    SELECT $1, sub.id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM sub
    RETURNING *
), secret AS (
    INSERT INTO endpoint_secrets (endpoint_id, secret) SELECT id, $14 FROM ep
)
SELECT ep.*, $2::text AS subscriber FROM ep;

-- name: get_endpoint
-- One endpoint. $1 tenant_id, $2 endpoint id
SELECT e.*, s.uid AS subscriber
FROM endpoints e JOIN subscribers s ON s.id = e.subscriber_id
WHERE e.tenant_id = $1 AND e.id = $2;

-- name: list_endpoints
-- A page of endpoints, newest first. $1 tenant_id, $2 subscriber uid or NULL,
-- $3 cursor id or NULL, $4 limit
SELECT e.*, s.uid AS subscriber
FROM endpoints e JOIN subscribers s ON s.id = e.subscriber_id
WHERE e.tenant_id = $1 AND ($2::text IS NULL OR s.uid = $2) AND ($3::text IS NULL OR e.id < $3)
ORDER BY e.id DESC LIMIT $4;

-- name: current_secret
-- The newest signing secret of an endpoint. $1 tenant_id, $2 endpoint id
SELECT s.secret FROM endpoint_secrets s JOIN endpoints e ON e.id = s.endpoint_id
WHERE e.tenant_id = $1 AND e.id = $2
ORDER BY s.created_at DESC LIMIT 1;
