-- name: list_deliveries
-- A page of deliveries, newest first, with the endpoint's URL. $1 tenant_id, $2 endpoint id
-- or NULL, $3 event id or NULL, $4 status or NULL, $5 cursor id or NULL, $6 limit,
-- $7 created at or after, or NULL, $8 created before, or NULL, $9 class of the last HTTP
-- status (1-5, 0: no answer at all) or NULL, $10 event type or NULL, $11 subscriber id
-- (only its endpoints' deliveries) or NULL
SELECT d.id, d.event_id, d.endpoint_id, d.seq, d.status, d.attempts, d.next_attempt_at,
       d.last_status, d.last_error, d.created_at, d.updated_at, ev.type AS event_type,
       e.url AS endpoint_url
FROM deliveries d JOIN events ev ON ev.id = d.event_id JOIN endpoints e ON e.id = d.endpoint_id
WHERE d.tenant_id = $1
  AND ($2::text IS NULL OR d.endpoint_id = $2)
  AND ($3::text IS NULL OR d.event_id = $3)
  AND ($4::text IS NULL OR d.status = $4)
  AND ($5::text IS NULL OR d.id < $5)
  AND ($7::timestamptz IS NULL OR d.created_at >= $7)
  AND ($8::timestamptz IS NULL OR d.created_at < $8)
  AND ($9::int IS NULL
       OR ($9 = 0 AND d.attempts > 0 AND d.last_status IS NULL)
       OR d.last_status / 100 = $9)
  AND ($10::text IS NULL OR ev.type = $10)
  AND ($11::text IS NULL OR e.subscriber_id = $11)
ORDER BY d.id DESC LIMIT $6;

-- name: get_delivery
-- One delivery, with what its endpoint sends. $1 tenant_id, $2 delivery id, $3 subscriber
-- id (only its endpoints' deliveries) or NULL
SELECT d.id, d.event_id, d.endpoint_id, d.seq, d.status, d.attempts, d.next_attempt_at,
       d.last_status, d.last_error, d.created_at, d.updated_at, ev.type AS event_type,
       e.url AS endpoint_url, e.payload AS endpoint_payload, e.format AS endpoint_format
FROM deliveries d JOIN events ev ON ev.id = d.event_id JOIN endpoints e ON e.id = d.endpoint_id
WHERE d.tenant_id = $1 AND d.id = $2 AND ($3::text IS NULL OR e.subscriber_id = $3);

-- name: event_of_producer_id
-- The id of the event a producer sent with its own id. $1 tenant_id, $2 producer id
SELECT id FROM events WHERE tenant_id = $1 AND producer_id = $2;

-- name: list_attempts
-- Every attempt of a delivery, first to last. $1 tenant_id, $2 delivery id
SELECT n, started_at, duration_ms, status_code, error, request_headers, response_headers,
       response_body, next_attempt_at
FROM attempts WHERE tenant_id = $1 AND delivery_id = $2 ORDER BY n;

-- name: lock_delivery_lane
-- Lock the lane of a delivery before changing the delivery (lanes first, as everywhere).
-- $1 tenant_id, $2 delivery id
SELECT l.id FROM lanes l JOIN deliveries d ON d.lane_id = l.id
WHERE d.tenant_id = $1 AND d.id = $2
FOR NO KEY UPDATE OF l;

-- name: retry_delivery
-- Put a dead-lettered or cancelled delivery back for one immediate attempt and wake its
-- lane. In a strict lane it becomes the head again: it goes before anything newer.
-- One attempt: retries_used is set to the length of the schedule that applies
-- (hookline_retry_schedule), so a failure ends it.
-- $1 tenant_id, $2 delivery id, $3 the installation's retry schedule
WITH d AS (
    UPDATE deliveries dl
    SET status = 'pending', next_attempt_at = now(), updated_at = now(),
        retries_used = cardinality(hookline_retry_schedule(e.retry_schedule, t.retry_schedule, $3))
    FROM endpoints e, tenants t
    WHERE dl.tenant_id = $1 AND dl.id = $2 AND dl.status IN ('failed', 'cancelled')
      AND e.id = dl.endpoint_id AND t.id = e.tenant_id
    RETURNING dl.lane_id
), woken AS (
    UPDATE lanes l SET ready_at = LEAST(coalesce(l.ready_at, now()), now())
    FROM d WHERE l.id = d.lane_id
      AND (l.lease_until IS NULL OR l.lease_until < now())  -- a holder's release reschedules
    RETURNING l.id
)
SELECT lane_id FROM d;
