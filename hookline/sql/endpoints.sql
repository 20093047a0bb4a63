-- name: create_endpoint
-- An endpoint of a subscriber with its first signing secret.
-- $1 tenant_id, $2 subscriber uid, $3 url, $4 description, $5 event_types or NULL,
-- $6 ordering, $7 on_exhausted, $8 payload, $9 format, $10 timeout or NULL,
-- $11 rate_limit or NULL, $12 max_in_flight, $13 headers, $14 schema_version or NULL,
-- $15 secret (sealed), $16 retry_schedule or NULL, $17 disable_after or NULL, $18 how the
-- secret signs (`hmac` | `ed25519`), $19 sensitive header names. `signature`: how its
-- current secret signs, as in the queries below.
WITH sub AS (
    SELECT id FROM subscribers WHERE tenant_id = $1 AND uid = $2
), ep AS (
    INSERT INTO endpoints (tenant_id, subscriber_id, url, description, event_types, ordering,
                           on_exhausted, payload, format, timeout, rate_limit, max_in_flight,
                           headers, schema_version, retry_schedule, disable_after,
                           sensitive_headers)
    SELECT $1, sub.id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $16, $17, $19
    FROM sub
    RETURNING *
), secret AS (
    INSERT INTO endpoint_secrets (endpoint_id, secret, kind) SELECT id, $15, $18 FROM ep
)
SELECT ep.*, $2::text AS subscriber, $18::text AS signature
FROM ep;

-- name: get_endpoint
-- One endpoint, with how its current secret signs. $1 tenant_id, $2 endpoint id,
-- $3 subscriber id or NULL (a portal session: only that subscriber's endpoints)
SELECT e.*, s.uid AS subscriber,
       (SELECT k.kind FROM endpoint_secrets k WHERE k.endpoint_id = e.id
        ORDER BY k.created_at DESC LIMIT 1) AS signature
FROM endpoints e JOIN subscribers s ON s.id = e.subscriber_id
WHERE e.tenant_id = $1 AND e.id = $2 AND ($3::text IS NULL OR e.subscriber_id = $3);

-- name: list_endpoints
-- A page of endpoints, newest first. $1 tenant_id, $2 subscriber uid or NULL,
-- $3 cursor id or NULL, $4 limit, $5 subscriber id or NULL (a portal session's scope)
SELECT e.*, s.uid AS subscriber,
       (SELECT k.kind FROM endpoint_secrets k WHERE k.endpoint_id = e.id
        ORDER BY k.created_at DESC LIMIT 1) AS signature
FROM endpoints e JOIN subscribers s ON s.id = e.subscriber_id
WHERE e.tenant_id = $1 AND ($2::text IS NULL OR s.uid = $2) AND ($3::text IS NULL OR e.id < $3)
  AND ($5::text IS NULL OR e.subscriber_id = $5)
ORDER BY e.id DESC LIMIT $4;

-- name: update_endpoint
-- Change the named fields of an endpoint and leave the others; a status set through the
-- API clears the reason the system gave for the last one. Re-enabling a disabled endpoint
-- starts its health afresh (disabled_at stays until the first success reports the
-- recovery) and returns replay_since: from when it missed events (else NULL).
-- No row: no such endpoint.
-- $1 tenant_id, $2 endpoint id, $3 names of the fields to change, $4 url, $5 description,
-- $6 event_types, $7 ordering, $8 on_exhausted, $9 payload, $10 format, $11 timeout,
-- $12 rate_limit, $13 max_in_flight, $14 headers, $15 schema_version, $16 status,
-- $17 retry_schedule, $18 disable_after, $19 sensitive_headers, $20 subscriber id or NULL
-- (a portal session's scope)
WITH old AS (
    SELECT id AS old_id,
           status = 'disabled' AND 'status' = ANY ($3) AND $16::text = 'active' AS reenabled,
           coalesce(disabled_at, failing_since, updated_at) AS missed_since
    FROM endpoints WHERE tenant_id = $1 AND id = $2 AND ($20::text IS NULL OR subscriber_id = $20)
    FOR NO KEY UPDATE
), ep AS (
    UPDATE endpoints SET
        url = CASE WHEN 'url' = ANY ($3) THEN $4::text ELSE url END,
        description = CASE WHEN 'description' = ANY ($3) THEN $5::text ELSE description END,
        event_types = CASE WHEN 'event_types' = ANY ($3) THEN $6::text[] ELSE event_types END,
        ordering = CASE WHEN 'ordering' = ANY ($3) THEN $7::text ELSE ordering END,
        on_exhausted = CASE WHEN 'on_exhausted' = ANY ($3) THEN $8::text ELSE on_exhausted END,
        payload = CASE WHEN 'payload' = ANY ($3) THEN $9::text ELSE payload END,
        format = CASE WHEN 'format' = ANY ($3) THEN $10::text ELSE format END,
        timeout = CASE WHEN 'timeout' = ANY ($3) THEN $11::real ELSE timeout END,
        rate_limit = CASE WHEN 'rate_limit' = ANY ($3) THEN $12::integer ELSE rate_limit END,
        max_in_flight = CASE WHEN 'max_in_flight' = ANY ($3) THEN $13::integer
                             ELSE max_in_flight END,
        headers = CASE WHEN 'headers' = ANY ($3) THEN $14::jsonb ELSE headers END,
        schema_version = CASE WHEN 'schema_version' = ANY ($3) THEN $15::integer
                              ELSE schema_version END,
        status = CASE WHEN 'status' = ANY ($3) THEN $16::text ELSE status END,
        retry_schedule = CASE WHEN 'retry_schedule' = ANY ($3) THEN $17::float8[]
                              ELSE retry_schedule END,
        disable_after = CASE WHEN 'disable_after' = ANY ($3) THEN $18::float8
                             ELSE disable_after END,
        sensitive_headers = CASE WHEN 'sensitive_headers' = ANY ($3) THEN $19::text[]
                                 ELSE sensitive_headers END,
        consecutive_failures = CASE WHEN reenabled THEN 0 ELSE consecutive_failures END,
        failing_since = CASE WHEN reenabled THEN NULL ELSE failing_since END,
        health_warning = CASE WHEN reenabled THEN 0 ELSE health_warning END,
        status_reason = CASE WHEN 'status' = ANY ($3) THEN '' ELSE status_reason END,
        updated_at = CASE WHEN cardinality($3) > 0 THEN now() ELSE updated_at END
    FROM old
    WHERE id = old_id
    RETURNING endpoints.*, CASE WHEN reenabled THEN missed_since END AS replay_since
)
SELECT ep.*, s.uid AS subscriber,
       (SELECT k.kind FROM endpoint_secrets k WHERE k.endpoint_id = ep.id
        ORDER BY k.created_at DESC LIMIT 1) AS signature
FROM ep JOIN subscribers s ON s.id = ep.subscriber_id;

-- name: lock_parked_lanes
-- Before resuming an endpoint: lock, in the order every writer uses, its lanes that have
-- something to send but no due time (parked by a claim while the endpoint was stopped).
-- $1 tenant_id, $2 endpoint id, $3 subscriber id or NULL (a portal session's scope)
SELECT l.id FROM lanes l JOIN endpoints e ON e.id = l.endpoint_id
WHERE e.tenant_id = $1 AND l.endpoint_id = $2 AND l.ready_at IS NULL
  AND ($3::text IS NULL OR e.subscriber_id = $3)
  AND EXISTS (SELECT 1 FROM deliveries d
              WHERE d.lane_id = l.id AND d.status IN ('pending', 'retrying'))
ORDER BY l.endpoint_id, l.key
FOR NO KEY UPDATE OF l;

-- name: signing_secrets
-- The signing secrets of an endpoint that still sign (sealed), newest (the current one)
-- first, with how each signs and when it stops (NULL: the current one). No row: no such
-- endpoint. $1 tenant_id, $2 endpoint id, $3 subscriber id or NULL (a portal session's scope)
SELECT s.secret, s.kind, s.expires_at FROM endpoint_secrets s JOIN endpoints e ON e.id = s.endpoint_id
WHERE e.tenant_id = $1 AND e.id = $2 AND (s.expires_at IS NULL OR s.expires_at > now())
  AND ($3::text IS NULL OR e.subscriber_id = $3)
ORDER BY s.created_at DESC;

-- name: lock_current_secret
-- Before a rotation: lock the endpoint as rotate_secret does and read how its current
-- secret signs.
-- No row: no such endpoint. $1 tenant_id, $2 endpoint id, $3 subscriber id or NULL (a
-- portal session's scope)
WITH ep AS (
    SELECT id FROM endpoints
    WHERE tenant_id = $1 AND id = $2 AND ($3::text IS NULL OR subscriber_id = $3)
    FOR NO KEY UPDATE
)
SELECT s.kind FROM endpoint_secrets s JOIN ep ON ep.id = s.endpoint_id
ORDER BY s.created_at DESC LIMIT 1;

-- name: rotate_secret
-- Make a new secret current; the current one keeps signing until the grace period ends
-- (the older ones keep their own end). Of the replaced secrets still signing, only the
-- newest $5 are kept; expired ones go. The endpoint row lock orders concurrent rotations
-- (NO KEY UPDATE: it does not wait for ingests, which only hold KEY SHARE on it).
-- One statement: every part sees the rows as they were before it, so the current secret
-- is the one with no end yet and counts among the kept ones as the newest.
-- No row: no such endpoint. $1 tenant_id, $2 endpoint id, $3 new secret (sealed),
-- $4 grace period (s), $5 replaced secrets kept at most, $6 how the new secret signs
WITH ep AS (
    SELECT id FROM endpoints WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE
), retired AS (
    UPDATE endpoint_secrets s SET expires_at = now() + make_interval(secs => $4)
    FROM ep WHERE s.endpoint_id = ep.id AND s.expires_at IS NULL
), dropped AS (
    DELETE FROM endpoint_secrets s USING ep
    WHERE s.endpoint_id = ep.id AND s.expires_at IS NOT NULL
      AND (s.expires_at <= now() OR s.created_at NOT IN (
          SELECT o.created_at FROM endpoint_secrets o
          WHERE o.endpoint_id = ep.id AND o.expires_at > now()
          ORDER BY o.created_at DESC LIMIT $5 - 1))
), added AS (
    INSERT INTO endpoint_secrets (endpoint_id, secret, kind) SELECT id, $3, $6 FROM ep
    RETURNING secret
)
SELECT secret FROM added;

-- name: delivery_of_event
-- The delivery of an event to one endpoint. $1 tenant_id, $2 event id, $3 endpoint id
SELECT id FROM deliveries WHERE tenant_id = $1 AND event_id = $2 AND endpoint_id = $3;

-- name: stop_endpoints
-- First step of deleting endpoints: stop the active ones, so that no ingest fans out to
-- them and no claim sends for them from now on (a claim parks a stopped endpoint's lanes).
-- $1 tenant_id, $2 endpoint id or NULL, $3 subscriber id or NULL (all of its endpoints)
UPDATE endpoints SET status = 'disabled', status_reason = 'being deleted', updated_at = now()
WHERE tenant_id = $1 AND (id = $2 OR subscriber_id = $3) AND status = 'active';

-- name: lock_tails_to_delete
-- Lock the lane tails of endpoints about to be deleted, in the order every writer uses
-- (tails before lanes): an ingest that began before they were stopped is either committed
-- or waits here. $1 tenant_id, $2 endpoint id or NULL, $3 subscriber id or NULL
SELECT 1 FROM lane_tails t JOIN endpoints e ON e.id = t.endpoint_id
WHERE e.tenant_id = $1 AND (e.id = $2 OR e.subscriber_id = $3)
ORDER BY t.endpoint_id, t.key
FOR UPDATE OF t;

-- name: lock_lanes_to_delete
-- Lock every lane of endpoints about to be deleted, in the order every writer uses, and
-- say until when a worker may still be sending on one of them (NULL: nobody holds one).
-- A claim that got a lane first has committed its lease by the time the lock is ours; a
-- claim that comes later skips it. $1 tenant_id, $2 endpoint id or NULL, $3 subscriber id
-- or NULL
WITH locked AS (
    SELECT l.lease_until FROM lanes l JOIN endpoints e ON e.id = l.endpoint_id
    WHERE e.tenant_id = $1 AND (e.id = $2 OR e.subscriber_id = $3)
    ORDER BY l.endpoint_id, l.key
    FOR UPDATE OF l
)
SELECT max(lease_until) FROM locked WHERE lease_until > now();

-- name: count_active_endpoints
-- How many endpoints about to be deleted were made active again since they were stopped.
-- $1 tenant_id, $2 endpoint id or NULL, $3 subscriber id or NULL
SELECT count(*) FROM endpoints
WHERE tenant_id = $1 AND (id = $2 OR subscriber_id = $3) AND status = 'active';

-- name: endpoint_exists
-- Whether the tenant has this endpoint. $1 tenant_id, $2 endpoint id
SELECT EXISTS (SELECT 1 FROM endpoints WHERE tenant_id = $1 AND id = $2);

-- name: delete_endpoint
-- Delete a stopped endpoint with its secrets, lanes, deliveries and attempts (cascades),
-- after lock_lanes_to_delete. $1 tenant_id, $2 endpoint id
DELETE FROM endpoints WHERE tenant_id = $1 AND id = $2;

-- name: secrets_to_reseal
-- Signing secrets not sealed under the current key (`hookline secrets reencrypt`), a page
-- at a time in key order. $1 the current sealed prefix (e.g. 'hlv1:1a2b3c4d:'),
-- $2 after this (endpoint id, created at) or NULL, $3 after created at, $4 limit
SELECT s.endpoint_id, s.created_at, s.secret, e.tenant_id
FROM endpoint_secrets s JOIN endpoints e ON e.id = s.endpoint_id
WHERE NOT starts_with(s.secret, $1)
  AND ($2::text IS NULL OR (s.endpoint_id, s.created_at) > ($2, $3::timestamptz))
ORDER BY s.endpoint_id, s.created_at
LIMIT $4;

-- name: reseal_secret
-- Store a secret sealed anew, unless it changed meanwhile. $1 endpoint id, $2 created at,
-- $3 the value read, $4 the value to store
UPDATE endpoint_secrets SET secret = $4
WHERE endpoint_id = $1 AND created_at = $2 AND secret = $3;

-- name: headers_to_reseal
-- Endpoints with custom headers, a page at a time in id order, for `hookline secrets
-- reencrypt` to look at. $1 after this endpoint id or NULL, $2 limit
SELECT id, tenant_id, headers, sensitive_headers FROM endpoints
WHERE headers <> '{}' AND ($1::text IS NULL OR id > $1)
ORDER BY id LIMIT $2;

-- name: reseal_headers
-- Store an endpoint's headers sealed anew, unless they changed meanwhile.
-- $1 endpoint id, $2 the headers read, $3 the headers to store
UPDATE endpoints SET headers = $3 WHERE id = $1 AND headers = $2::jsonb;
