-- name: lease_replays
-- Take up to $1 running replays nobody holds (or whose holder's lease ran out) for $2
-- seconds, the least recently advanced first. SKIP LOCKED: one another worker is taking
-- is left to it. $1 limit, $2 lease (s)
WITH picked AS (
    SELECT id FROM replays
    WHERE state = 'running' AND (lease_until IS NULL OR lease_until < now())
    ORDER BY updated_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE replays r
SET lease_until = now() + make_interval(secs => $2), lease_no = r.lease_no + 1
FROM picked WHERE r.id = picked.id
RETURNING r.id, r.tenant_id, r.endpoint_id, r.statuses, r.event_types, r.since,
          least(coalesce(r.until, r.created_at), r.created_at) AS until, r.missed, r.rate,
          r.stage, r.after_id, r.lease_no;

-- name: replay_deliveries_chunk
-- The next deliveries a replay re-queues. $1 tenant_id, $2 endpoint id or NULL,
-- $3 statuses, $4 types or NULL, $5 since or NULL, $6 until, $7 after this delivery id or
-- NULL, $8 limit
SELECT id, lane_id FROM hookline_replay_deliveries($1, $2, $3, $4, $5, $6, $7, $8);

-- name: requeue_deliveries
-- Give each delivery still in one of the statuses one more immediate attempt (as a manual
-- retry does: no automatic retries after it), unless its event was cancelled or expired
-- meanwhile; run after lock_lanes, then reschedule_lanes (both hookline/sql/lanes.sql).
-- Returns the lanes of the deliveries re-queued, one row each. $1 tenant_id, $2 delivery ids, $3 statuses,
-- $4 the installation's retry schedule
UPDATE deliveries d
SET status = 'pending', next_attempt_at = now(), updated_at = now(),
    -- at the end of the schedule the dispatcher applies
    retries_used = cardinality(hookline_retry_schedule(e.retry_schedule, t.retry_schedule, $4))
FROM endpoints e, tenants t, events ev
WHERE d.tenant_id = $1 AND d.id = ANY ($2::text[]) AND d.status = ANY ($3::text[])
  AND e.id = d.endpoint_id AND t.id = d.tenant_id AND ev.id = d.event_id
  AND ev.cancelled_at IS NULL AND (ev.expires_at IS NULL OR ev.expires_at > now())
RETURNING d.lane_id;

-- name: queue_missed_events
-- Give the endpoint a delivery of each of the next events it never got, with new sequence
-- numbers at the end of their lanes, in event id order, as ingest numbers them
-- (hookline_take_lane_numbers).
-- Returns how many events were picked, the last one's id, how many were queued, and the
-- lanes to wake once committed (hookline/lanes.py).
-- $1 tenant_id, $2 endpoint id, $3 types or NULL, $4 since, $5 until, $6 after this event
-- id or NULL, $7 limit
WITH picked AS MATERIALIZED (
    SELECT m.event_id, m.subject, m.ordering_key
    FROM hookline_replay_missed($1, $2, $3, $4, $5, $6, $7) m
), target AS MATERIALIZED (
    SELECT p.event_id, e.id AS endpoint_id,
           hookline_lane_key(e.ordering, p.ordering_key, p.subject, p.event_id) AS key
    FROM picked p JOIN endpoints e ON e.tenant_id = $1 AND e.id = $2
), numbered AS MATERIALIZED (
    SELECT t.*, count(*) OVER lane_window AS lane_n,
           row_number() OVER (lane_window ORDER BY t.event_id) AS lane_pos
    FROM target t
    WINDOW lane_window AS (PARTITION BY t.key)
), lane_counts AS MATERIALIZED (
    SELECT endpoint_id, key, max(lane_n) AS n FROM numbered GROUP BY endpoint_id, key
), tail AS MATERIALIZED (
    SELECT * FROM hookline_take_lane_numbers(
        $1,
        ARRAY(SELECT endpoint_id FROM lane_counts ORDER BY endpoint_id, key),
        ARRAY(SELECT key FROM lane_counts ORDER BY endpoint_id, key),
        ARRAY(SELECT n FROM lane_counts ORDER BY endpoint_id, key))
), delivery AS (
    INSERT INTO deliveries (tenant_id, event_id, endpoint_id, lane_id, seq)
    SELECT $1, n.event_id, n.endpoint_id, tail.lane_id, tail.next_seq - n.lane_n + n.lane_pos
    FROM numbered n JOIN tail USING (endpoint_id, key)
    RETURNING 1
)
SELECT (SELECT count(*) FROM picked) AS picked,
       (SELECT max(event_id) FROM picked) AS last_id,
       (SELECT count(*) FROM delivery) AS queued,
       ARRAY(SELECT lane_id FROM tail WHERE unsure) AS unsure;

-- name: advance_replay
-- Record a chunk's progress and renew the lease, only while the lease is still ours and the
-- replay still running (else nothing: the caller rolls its chunk back). Finishing ends it.
-- $1 replay id, $2 lease number, $3 stage, $4 last id handled, $5 queued by this chunk,
-- $6 finished, $7 lease (s)
UPDATE replays
SET stage = $3, after_id = $4, queued = queued + $5, updated_at = now(),
    state = CASE WHEN $6 THEN 'done' ELSE state END,
    finished_at = CASE WHEN $6 THEN now() END,
    lease_until = CASE WHEN $6 THEN NULL ELSE now() + make_interval(secs => $7) END
WHERE id = $1 AND lease_no = $2 AND state = 'running'
RETURNING state;

-- name: release_replay
-- Give up a lease (the job stopped, or the worker is shutting down), if still ours.
-- $1 replay id, $2 lease number
UPDATE replays SET lease_until = NULL WHERE id = $1 AND lease_no = $2;
