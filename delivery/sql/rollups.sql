-- name: roll_up_attempts
-- Add a batch of attempts to the per-minute rollups of their endpoints (the dashboard's
-- read model, see migrations/0014_attempt_rollups.sql), in the transaction that records
-- them, after move_deliveries. One row per (endpoint, minute) in the batch, inserted in
-- (endpoint_id, minute) order so two recorders lock rollup rows in the same order and
-- never deadlock. A dead letter counts only where the batch moved the delivery to failed:
-- the result was sent under the lane's current lease and the delivery is failed now (an
-- attempt recorded by a worker that outlived its lease, or one whose delivery was
-- cancelled meanwhile, dead-letters nothing). An endpoint deleted meanwhile gets no row.
-- The histogram has the 13 buckets of hookline_latency_bounds() (12 bounds, overflow).
-- One row per attempt sent: $1 endpoint ids, $2 delivery ids, $3 lane ids, $4 lease
-- numbers, $5 new delivery statuses, $6 start times, $7 durations (ms), $8 HTTP statuses
WITH r AS (
    SELECT r.endpoint_id, date_trunc('minute', r.started_at, 'UTC') AS minute, r.duration_ms,
           coalesce(r.status_code BETWEEN 200 AND 299, false) AS ok,
           width_bucket(r.duration_ms, hookline_latency_bounds()) + 1 AS b,
           r.status = 'failed' AND EXISTS (
               SELECT 1 FROM lanes l JOIN deliveries d ON d.lane_id = l.id
               WHERE l.id = r.lane_id AND l.lease_no = r.lease_no
                 AND d.id = r.delivery_id AND d.status = 'failed') AS dead
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[],
                $6::timestamptz[], $7::real[], $8::int[])
         AS r(endpoint_id, delivery_id, lane_id, lease_no, status, started_at, duration_ms,
              status_code)
), cell AS (
    SELECT endpoint_id, minute, count(*) AS attempts, count(*) FILTER (WHERE ok) AS succeeded,
           count(*) FILTER (WHERE NOT ok) AS failed, count(*) FILTER (WHERE dead) AS dead,
           sum(duration_ms) AS duration_ms,
           ARRAY[count(*) FILTER (WHERE b = 1), count(*) FILTER (WHERE b = 2),
                 count(*) FILTER (WHERE b = 3), count(*) FILTER (WHERE b = 4),
                 count(*) FILTER (WHERE b = 5), count(*) FILTER (WHERE b = 6),
                 count(*) FILTER (WHERE b = 7), count(*) FILTER (WHERE b = 8),
                 count(*) FILTER (WHERE b = 9), count(*) FILTER (WHERE b = 10),
                 count(*) FILTER (WHERE b = 11), count(*) FILTER (WHERE b = 12),
                 count(*) FILTER (WHERE b = 13)]::int[] AS latency
    FROM r GROUP BY endpoint_id, minute
)
INSERT INTO attempt_rollups AS a (endpoint_id, minute, tenant_id, attempts, succeeded,
                                  failed, dead_lettered, duration_ms, latency)
SELECT c.endpoint_id, c.minute, e.tenant_id, c.attempts, c.succeeded, c.failed, c.dead,
       c.duration_ms, c.latency
FROM cell c JOIN endpoints e ON e.id = c.endpoint_id
ORDER BY c.endpoint_id, c.minute
ON CONFLICT (endpoint_id, minute) DO UPDATE SET
    attempts = a.attempts + excluded.attempts,
    succeeded = a.succeeded + excluded.succeeded,
    failed = a.failed + excluded.failed,
    dead_lettered = a.dead_lettered + excluded.dead_lettered,
    duration_ms = a.duration_ms + excluded.duration_ms,
    latency = hookline_add_counts(a.latency, excluded.latency);
