-- name: claim_lanes
-- Lease up to $1 due lanes and return, in sequence order, the head delivery of each and up
-- to $4 - 1 followers that are due too, with what is needed to send them. The worker sends
-- a lane's rows one after another and stops at the first failure, so the lease covers two
-- attempt deadlines (it starts no attempt after the first deadline has passed).
-- A lane with nothing to send, or whose endpoint is no longer active, is parked
-- (ready_at NULL) instead. SKIP LOCKED: lanes an ingest or another worker holds are left.
-- $1 limit, $2 default attempt timeout (s), $3 lease margin (s), $4 deliveries per lane
WITH picked AS (
    SELECT id FROM lanes
    WHERE ready_at <= now() AND (lease_until IS NULL OR lease_until < now())
    ORDER BY ready_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), run AS (
    SELECT p.id AS lane_id, r.id, r.seq
    FROM picked p CROSS JOIN LATERAL (
        SELECT d.id, d.seq, row_number() OVER w AS pos,
               count(*) FILTER (WHERE d.next_attempt_at > now()) OVER w AS waiting
        FROM (SELECT * FROM deliveries d
              WHERE d.lane_id = p.id AND d.status IN ('pending', 'retrying')
              ORDER BY d.seq LIMIT $4) d
        WINDOW w AS (ORDER BY d.seq)
    ) r
    -- the head is due because its lane is; followers only while every one before is due
    WHERE r.pos = 1 OR r.waiting = 0
), leased AS (
    UPDATE lanes l
    SET lease_no = l.lease_no + 1,
        lease_until = CASE WHEN e.status = 'active' AND EXISTS (
                               SELECT 1 FROM run WHERE run.lane_id = l.id)
                           THEN now() + make_interval(
                               secs => 2 * coalesce(e.timeout, t.delivery_timeout, $2) + $3)
                      END,
        ready_at = CASE WHEN e.status = 'active' AND EXISTS (
                            SELECT 1 FROM run WHERE run.lane_id = l.id)
                        THEN l.ready_at END
    FROM picked p, endpoints e, tenants t
    WHERE l.id = p.id AND e.id = l.endpoint_id AND t.id = e.tenant_id
    RETURNING l.id AS lane_id, l.lease_no, e.status AS endpoint_status
)
SELECT x.lane_id, x.lease_no, d.id AS delivery_id, d.seq, d.attempts, d.retries_used,
       d.tenant_id, ev.ordering_key,
       ev.id AS event_id, ev.type, ev.subject, ev.url AS event_url, ev.created_at,
       ev.expires_at,
       CASE WHEN e.payload = 'full' THEN ev.data END AS data,
       e.id AS endpoint_id, e.url, e.payload, e.format, e.headers, e.ordering,
       -- the endpoint's own policy, else its tenant's (else the worker's settings)
       coalesce(e.timeout, t.delivery_timeout) AS timeout,
       coalesce(e.retry_schedule, t.retry_schedule) AS retry_schedule,
       e.on_exhausted,
       ARRAY(SELECT s.secret FROM endpoint_secrets s
             WHERE s.endpoint_id = e.id AND (s.expires_at IS NULL OR s.expires_at > now())
             ORDER BY s.created_at DESC) AS secrets
FROM leased x
JOIN run ON run.lane_id = x.lane_id
JOIN deliveries d ON d.id = run.id
JOIN events ev ON ev.id = d.event_id
JOIN endpoints e ON e.id = d.endpoint_id
JOIN tenants t ON t.id = e.tenant_id
WHERE x.endpoint_status = 'active'
ORDER BY x.lane_id, d.seq;

-- name: next_ready_at
-- When the earliest idle lane falls due (NULL: nothing scheduled). No parameters.
SELECT min(ready_at) FROM lanes
WHERE ready_at IS NOT NULL AND (lease_until IS NULL OR lease_until < now());

-- name: lock_lanes
-- Lock lanes in the order every writer uses, before recording results. $1 lane ids
SELECT id FROM lanes WHERE id = ANY ($1::bigint[]) ORDER BY endpoint_id, key FOR UPDATE;

-- name: record_attempts
-- Append one attempt row per result and move each delivery on, but only where the lane
-- lease is still the one the result was sent under (a worker that outlived its lease
-- records its attempt for the audit trail and changes nothing else).
-- $1 delivery ids, $2 lane ids, $3 lease numbers, $4 new statuses, $5 attempt numbers,
-- $6 retries used, $7 next attempt times (NULL: unchanged), $8 started at,
-- $9 durations (ms), $10 HTTP statuses, $11 errors, $12 request headers,
-- $13 response headers, $14 response body excerpts
WITH r AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::int[],
                         $6::int[], $7::timestamptz[], $8::timestamptz[], $9::real[],
                         $10::int[], $11::text[], $12::jsonb[], $13::jsonb[], $14::text[])
        AS r(delivery_id, lane_id, lease_no, status, n, retries_used, next_attempt_at,
             started_at, duration_ms, status_code, error, request_headers,
             response_headers, response_body)
), current AS (
    SELECT r.* FROM r JOIN lanes l ON l.id = r.lane_id AND l.lease_no = r.lease_no
), moved AS (
    UPDATE deliveries d
    SET status = c.status, attempts = c.n, retries_used = c.retries_used,
        next_attempt_at = coalesce(c.next_attempt_at, d.next_attempt_at),
        last_status = c.status_code, last_error = c.error, updated_at = now()
    FROM current c
    WHERE d.id = c.delivery_id AND d.status IN ('pending', 'retrying')
    RETURNING d.id
), appended AS (
    INSERT INTO attempts (delivery_id, tenant_id, n, started_at, duration_ms, status_code,
                          error, request_headers, response_headers, response_body,
                          next_attempt_at)
    SELECT r.delivery_id, d.tenant_id, r.n, r.started_at, r.duration_ms, r.status_code,
           r.error, r.request_headers, r.response_headers, r.response_body,
           r.next_attempt_at
    FROM r JOIN deliveries d ON d.id = r.delivery_id
    WHERE r.started_at IS NOT NULL  -- an expired event's delivery was never attempted
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM appended) AS appended;

-- name: set_endpoint_status
-- Pause or disable an endpoint from the delivery path (410 Gone, exhausted with
-- on_exhausted=pause). $1 endpoint id, $2 status, $3 reason
UPDATE endpoints SET status = $2, status_reason = $3, updated_at = now()
WHERE id = $1 AND status = 'active';

-- name: release_lanes
-- End the leases that are still ours and schedule each lane by its new head (NULL when
-- empty or its endpoint stopped). Runs after record_attempts in the same transaction, so
-- it sees the deliveries just moved, and after lock_lanes, so it sees every ingest that
-- committed into these lanes. $1 lane ids, $2 lease numbers
UPDATE lanes l
SET lease_until = NULL,
    ready_at = CASE WHEN e.status = 'active' THEN hookline_head_due(l.id) END
FROM unnest($1::bigint[], $2::bigint[]) AS r(lane_id, lease_no), endpoints e
WHERE l.id = r.lane_id AND l.lease_no = r.lease_no AND e.id = l.endpoint_id;

-- name: due_backlog
-- How many lanes are due and idle, and how long the oldest has waited (s). No parameters.
SELECT count(*) AS lanes,
       coalesce(extract(epoch FROM now() - min(ready_at)), 0)::float8 AS oldest_s
FROM lanes
WHERE ready_at <= now() AND (lease_until IS NULL OR lease_until < now());
