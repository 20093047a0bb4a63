-- name: claim_lock
-- Claims take turns (a transaction-level lock, released at commit), so the in-flight
-- counts and paces a claim reads are not raced past by another worker's claim.
SELECT pg_advisory_xact_lock(hashtext('hookline:claim'));

-- name: pick_lanes
-- The due idle lanes a claim may lease, tenant by tenant: for each tenant that may take
-- more here, its oldest due lanes (at most $6 looked at), ranked by `turn` (1 for each
-- tenant's first, 2 for its second, ...) so that a claim taking them in turn order shares
-- itself out across tenants whatever their backlogs. `held` marks lanes of endpoints that
-- cannot take another now (at their cap or rate across workers, or at this worker's share
-- of them, $2): the claim defers those rather than read past them again. For the others
-- (at most $1 and the tenant's room each): what their endpoint allows, its cap of lanes in
-- flight (one for strict), how many are leased now, its rate limit and pace. Nothing is
-- locked here: claims take turns (claim_lock), and lease_lanes re-checks under a lock.
-- $1 lanes wanted, $2 endpoints this worker will not take more of now, $3 tenants with
-- lanes in flight here, $4 how many more each of them may take, $5 how many a tenant with
-- nothing in flight here may take, $6 lanes looked at per tenant
WITH blocked AS MATERIALIZED (
    SELECT hookline_blocked_endpoints() AS endpoint_id
), seen AS (
    SELECT w.id, w.tenant_id, w.endpoint_id, w.ready_at, q.room,
           (w.endpoint_id IN (SELECT endpoint_id FROM blocked)
            OR w.endpoint_id = ANY ($2::text[])) AS held
    FROM tenants t
    LEFT JOIN unnest($3::text[], $4::int[]) AS r(tenant_id, room) ON r.tenant_id = t.id
    CROSS JOIN LATERAL (SELECT coalesce(r.room, $5) AS room) q
    CROSS JOIN LATERAL (
        SELECT l.id, l.tenant_id, l.endpoint_id, l.ready_at FROM lanes l
        WHERE l.tenant_id = t.id AND l.ready_at <= now()
          AND (l.lease_until IS NULL OR l.lease_until < now())
        ORDER BY l.ready_at
        LIMIT $6
    ) w
    WHERE q.room > 0
), ranked AS (
    SELECT s.*, row_number() OVER (PARTITION BY s.tenant_id, s.held ORDER BY s.ready_at) AS turn
    FROM seen s
)
SELECT r.id AS lane_id, r.endpoint_id, r.tenant_id, r.held, r.turn,
       e.status = 'active' AS active,
       CASE WHEN e.ordering = 'strict' THEN 1 ELSE e.max_in_flight END AS cap,
       CASE WHEN r.held THEN 0 ELSE
           (SELECT count(*) FROM lanes b
            WHERE b.endpoint_id = r.endpoint_id AND b.lease_until > now()) END AS busy,
       e.rate_limit AS rate, p.tat, now() AS now
FROM ranked r
JOIN endpoints e ON e.id = r.endpoint_id
LEFT JOIN endpoint_pace p ON p.endpoint_id = r.endpoint_id
WHERE r.held OR r.turn <= least($1, r.room)
ORDER BY r.held, r.turn, r.ready_at;

-- name: defer_lanes
-- Move due lanes of endpoints that cannot take another now out of the claims' way: a
-- rate-limited one's until its pace lets it send, any other's by $2 seconds at most, marked
-- `deferred` so that the release of a lane of its endpoint wakes it at once. Locked lanes
-- (an ingest, a recording) are skipped, and nothing waits for a lock.
-- $1 lane ids, $2 seconds
UPDATE lanes l
SET ready_at = CASE WHEN x.free_at > now() THEN x.free_at
                    ELSE now() + make_interval(secs => $2) END,
    deferred = x.free_at IS NULL OR x.free_at <= now()
FROM (SELECT d.id, p.free_at
      FROM (SELECT id, endpoint_id FROM lanes
            WHERE id = ANY ($1::bigint[]) AND ready_at <= now()
              AND (lease_until IS NULL OR lease_until < now())
            FOR NO KEY UPDATE SKIP LOCKED) d
      LEFT JOIN endpoint_pace p ON p.endpoint_id = d.endpoint_id) x
WHERE l.id = x.id;

-- name: park_lanes
-- Take lanes off the schedule whose endpoint is paused or disabled (resuming schedules
-- them again). The endpoint rows are share-locked and their status read afresh: a resume
-- (which locks the endpoint row) either commits first, and then the lanes are left due,
-- or waits for this claim, and then finds them parked and schedules them. Lanes someone
-- holds are skipped (the next claim parks them). $1 lane ids
UPDATE lanes l SET ready_at = NULL
FROM (SELECT id FROM endpoints
      WHERE status <> 'active'
        AND id IN (SELECT endpoint_id FROM lanes WHERE id = ANY ($1::bigint[]))
      FOR SHARE) e
WHERE l.id IN (SELECT id FROM lanes WHERE id = ANY ($1::bigint[]) FOR NO KEY UPDATE SKIP LOCKED)
  AND l.endpoint_id = e.id;

-- name: lease_lanes
-- Lease the given lanes and return, in sequence order, the head delivery of each and the
-- followers that are due too (at most $2[i] deliveries for lane $1[i]), with what is
-- needed to send them. The worker sends a lane's rows one after another and stops at the
-- first failure, so the lease covers two attempt deadlines (it starts no attempt after
-- the first deadline has passed), and the lane falls due again when the lease runs out
-- (a worker that died holding it). A lane with nothing to send is parked (ready_at NULL),
-- and returns no row: the caller wakes it after the commit (hookline/lanes.py) in case an
-- ingest was writing into it. Lanes are locked and re-checked first: one someone holds, or
-- that is no longer due and idle, is skipped (its deliveries do not come back).
-- $1 lane ids, $2 deliveries per lane, $3 default attempt timeout (s), $4 lease margin (s),
-- $5 the installation's retry schedule
WITH picked AS MATERIALIZED (
    SELECT p.id, p.n
    FROM unnest($1::bigint[], $2::int[]) AS p(id, n) JOIN lanes l ON l.id = p.id
    WHERE l.ready_at <= now() AND (l.lease_until IS NULL OR l.lease_until < now())
    FOR NO KEY UPDATE OF l SKIP LOCKED
), run AS (
    SELECT p.id AS lane_id, r.id, r.seq
    FROM picked p CROSS JOIN LATERAL (
        SELECT d.id, d.seq, row_number() OVER w AS pos,
               count(*) FILTER (WHERE d.next_attempt_at > now()) OVER w AS waiting
        FROM (SELECT * FROM deliveries d
              WHERE d.lane_id = p.id AND d.status IN ('pending', 'retrying')
              ORDER BY d.seq LIMIT p.n) d
        WINDOW w AS (ORDER BY d.seq)
    ) r
    -- the head is due because its lane is; followers only while every one before is due
    WHERE r.pos = 1 OR r.waiting = 0
), lease AS (
    SELECT p.id, EXISTS (SELECT 1 FROM run WHERE run.lane_id = p.id) AS sends,
           now() + make_interval(
               secs => 2 * coalesce(e.timeout, t.delivery_timeout, $3) + $4) AS until
    FROM picked p
    JOIN lanes l ON l.id = p.id
    JOIN endpoints e ON e.id = l.endpoint_id
    JOIN tenants t ON t.id = e.tenant_id
), leased AS (
    UPDATE lanes l
    SET lease_no = l.lease_no + 1, deferred = false,
        lease_until = CASE WHEN q.sends THEN q.until END,
        ready_at = CASE WHEN q.sends THEN q.until END
    FROM lease q
    WHERE l.id = q.id
    RETURNING l.id AS lane_id, l.lease_no
)
SELECT x.lane_id, x.lease_no, d.id AS delivery_id, d.seq, d.attempts, d.retries_used,
       d.tenant_id, ev.ordering_key,
       ev.id AS event_id, ev.type, ev.subject, ev.url AS event_url, ev.created_at,
       -- judged here, not in Python: Postgres compares +-infinity and any far date right
       coalesce(ev.expires_at <= now(), false) AS expired,
       CASE WHEN e.payload = 'full' THEN ev.data END AS data,
       e.id AS endpoint_id, e.url, e.payload, e.format, e.headers, e.sensitive_headers,
       e.ordering,
       -- the endpoint's own policy, else its tenant's (else the worker's settings)
       coalesce(e.timeout, t.delivery_timeout) AS timeout,
       hookline_retry_schedule(e.retry_schedule, t.retry_schedule, $5) AS retry_schedule,
       e.on_exhausted,
       -- sealed: the worker opens them (hookline/vault.py)
       ARRAY(SELECT s.secret FROM endpoint_secrets s
             WHERE s.endpoint_id = e.id AND (s.expires_at IS NULL OR s.expires_at > now())
             ORDER BY s.created_at DESC) AS secrets
FROM leased x
JOIN run ON run.lane_id = x.lane_id
JOIN deliveries d ON d.id = run.id
JOIN events ev ON ev.id = d.event_id
JOIN endpoints e ON e.id = d.endpoint_id
JOIN tenants t ON t.id = e.tenant_id
ORDER BY x.lane_id, d.seq;

-- name: pace_endpoints
-- Record the pace of rate-limited endpoints after a claim handed deliveries out.
-- $1 endpoint ids, $2 theoretical arrival times, $3 free from
INSERT INTO endpoint_pace (endpoint_id, tat, free_at)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[])
ON CONFLICT (endpoint_id) DO UPDATE SET tat = excluded.tat, free_at = excluded.free_at;

-- name: next_ready_at
-- When a claim may next find work (NULL: nothing scheduled): the earliest idle lane of a
-- tenant that may take more here, or the moment a rate-limited endpoint may send again.
-- (Lanes of saturated endpoints are deferred by the claims, so they do not count as due.)
-- $1 tenants this worker will not take more of now
SELECT least(
    (SELECT min(w.ready_at) FROM tenants t CROSS JOIN LATERAL (
         SELECT l.ready_at FROM lanes l
         WHERE l.tenant_id = t.id AND l.ready_at IS NOT NULL
           AND (l.lease_until IS NULL OR l.lease_until < now())
         ORDER BY l.ready_at LIMIT 1) w
     WHERE NOT t.id = ANY ($1::text[])),
    (SELECT min(free_at) FROM endpoint_pace WHERE free_at > now()));

-- name: unpark_resumed
-- A safety net for a claim or recording that parked a lane with a stale view of its
-- endpoint while the endpoint was being resumed: schedule the lanes of recently resumed
-- endpoints that have something to send but no due time. Locks in the usual order.
WITH stuck AS (
    SELECT l.id FROM lanes l JOIN endpoints e ON e.id = l.endpoint_id
    WHERE e.status = 'active' AND e.updated_at > now() - interval '10 minutes'
      AND l.ready_at IS NULL AND l.lease_until IS NULL
      AND hookline_head_due(l.id) IS NOT NULL
    ORDER BY l.endpoint_id, l.key
    FOR NO KEY UPDATE OF l SKIP LOCKED
)
UPDATE lanes l SET ready_at = hookline_head_due(l.id)
FROM stuck WHERE l.id = stuck.id AND l.ready_at IS NULL AND l.lease_until IS NULL;

-- name: append_attempts
-- Append one attempt row per result (the audit trail: whatever became of the lease).
-- $1 delivery ids, $2 attempt numbers, $3 started at (NULL: never attempted, an expired
-- event; no row), $4 durations (ms), $5 HTTP statuses, $6 errors, $7 request headers,
-- $8 response headers, $9 response body excerpts, $10 next attempt times
INSERT INTO attempts (delivery_id, tenant_id, n, started_at, duration_ms, status_code,
                      error, request_headers, response_headers, response_body,
                      next_attempt_at)
SELECT r.delivery_id, d.tenant_id, r.n, r.started_at, r.duration_ms, r.status_code,
       r.error, r.request_headers, r.response_headers, r.response_body, r.next_attempt_at
FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::real[], $5::int[], $6::text[],
            $7::jsonb[], $8::jsonb[], $9::text[], $10::timestamptz[])
     AS r(delivery_id, n, started_at, duration_ms, status_code, error, request_headers,
          response_headers, response_body, next_attempt_at)
JOIN deliveries d ON d.id = r.delivery_id
WHERE r.started_at IS NOT NULL;

-- name: move_deliveries
-- Move each delivery on, but only where the lane lease is still the one the result was
-- sent under (a worker that outlived its lease changes nothing; its attempt is still
-- appended). Run after lock_lanes (hookline/sql/lanes.sql). $1 delivery ids, $2 lane ids, $3 lease numbers,
-- $4 new statuses, $5 attempt numbers, $6 retries used, $7 next attempt times (NULL:
-- unchanged), $8 HTTP statuses, $9 errors
UPDATE deliveries d
SET status = c.status, attempts = c.n, retries_used = c.retries_used,
    next_attempt_at = coalesce(c.next_attempt_at, d.next_attempt_at),
    last_status = c.status_code, last_error = c.error, updated_at = now()
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::int[], $6::int[],
            $7::timestamptz[], $8::int[], $9::text[])
     AS c(delivery_id, lane_id, lease_no, status, n, retries_used, next_attempt_at,
          status_code, error)
JOIN lanes l ON l.id = c.lane_id AND l.lease_no = c.lease_no
WHERE d.id = c.delivery_id AND d.status IN ('pending', 'retrying');

-- name: set_endpoint_status
-- Pause or disable an endpoint from the delivery path (410 Gone, exhausted with
-- on_exhausted=pause). Disabling records when and writes an endpoint.disabled notice
-- for the tenant's operational endpoint, if it has one (see delivery/sql/health.sql).
-- $1 endpoint id, $2 status, $3 reason, $4 the HTTP status of the attempt that decided it
WITH ep AS (
    UPDATE endpoints SET status = $2::text, status_reason = $3, updated_at = now(),
        disabled_at = CASE WHEN $2::text = 'disabled' THEN now() ELSE disabled_at END
    WHERE id = $1 AND status = 'active'
    RETURNING id, tenant_id, url, subscriber_id, failing_since, consecutive_failures,
              status, status_reason
)
INSERT INTO operational_notices (tenant_id, endpoint_id, type, data)
SELECT ep.tenant_id, ep.id, 'endpoint.disabled', jsonb_build_object(
           'endpoint_id', ep.id, 'url', ep.url, 'subscriber', s.uid,
           'failing_since', hookline_iso_time(ep.failing_since),
           'consecutive_failures', ep.consecutive_failures,
           'last_status', $4::int, 'last_error', NULL,
           'disabled_at', hookline_iso_time(now()), 'reason', ep.status_reason)
FROM ep JOIN subscribers s ON s.id = ep.subscriber_id JOIN tenants t ON t.id = ep.tenant_id
WHERE ep.status = 'disabled' AND t.operational_endpoint_id <> ep.id;

-- name: release_lanes
-- End the leases that are still ours and schedule each lane by its new head (NULL when
-- empty or its endpoint stopped); for every lane released, wake one deferred lane of the
-- same endpoint (it waited for exactly that). Runs after move_deliveries in the same
-- transaction, so it sees the deliveries just moved; deferred lanes someone holds are
-- skipped. Returns the lanes of active endpoints left empty: an ingest may have been
-- writing into them, so the caller wakes them after the commit (hookline/lanes.py).
-- $1 lane ids, $2 lease numbers
WITH released AS (
    UPDATE lanes l
    SET lease_until = NULL,
        ready_at = CASE WHEN e.status = 'active' THEN hookline_head_due(l.id) END
    FROM unnest($1::bigint[], $2::bigint[]) AS r(lane_id, lease_no), endpoints e
    WHERE l.id = r.lane_id AND l.lease_no = r.lease_no AND e.id = l.endpoint_id
    RETURNING l.id, l.endpoint_id, e.status = 'active' AND l.ready_at IS NULL AS empty
), freed AS (
    SELECT endpoint_id, count(*) AS n FROM released GROUP BY endpoint_id
), waiting AS (
    SELECT w.id
    FROM freed f CROSS JOIN LATERAL (
        SELECT d.id FROM lanes d
        WHERE d.endpoint_id = f.endpoint_id AND d.deferred
        ORDER BY d.ready_at LIMIT f.n
        FOR NO KEY UPDATE SKIP LOCKED) w
), woken AS (
    UPDATE lanes l SET ready_at = now(), deferred = false
    FROM waiting w WHERE l.id = w.id AND l.deferred
)
SELECT id FROM released WHERE empty;

-- name: due_backlog
-- How many lanes are due and idle, and how long the oldest has waited (s). No parameters.
SELECT count(*) AS lanes,
       coalesce(extract(epoch FROM now() - min(ready_at)), 0)::float8 AS oldest_s
FROM lanes
WHERE ready_at <= now() AND (lease_until IS NULL OR lease_until < now());
