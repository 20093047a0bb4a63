-- name: activity_series
-- Attempts per time bucket from the per-minute rollups (never from attempts): counts, the
-- sum of durations and the latency histogram summed bucket by bucket (13 buckets, as
-- hookline_latency_bounds() has 12 bounds and an overflow). Only buckets with attempts
-- come back. A subscriber's rows are read through its endpoints (the rollups' primary
-- key), the tenant's through the tenant index: each branch is cheap whichever plan runs.
-- $1 tenant_id, $2 subscriber id or NULL (the whole tenant), $3 from (the first bucket's
-- start), $4 until (exclusive), $5 bucket width
WITH scoped AS (
    SELECT r.* FROM attempt_rollups r
    WHERE $2::text IS NULL AND r.tenant_id = $1 AND r.minute >= $3 AND r.minute < $4
    UNION ALL
    SELECT r.* FROM endpoints e
    JOIN attempt_rollups r ON r.endpoint_id = e.id AND r.minute >= $3 AND r.minute < $4
    WHERE e.tenant_id = $1 AND e.subscriber_id = $2::text
)
SELECT date_bin($5::interval, minute, $3::timestamptz) AS at,
       sum(attempts)::bigint AS attempts, sum(succeeded)::bigint AS succeeded,
       sum(failed)::bigint AS failed, sum(dead_lettered)::bigint AS dead_lettered,
       sum(duration_ms)::float8 AS duration_ms,
       ARRAY[sum(latency[1]), sum(latency[2]), sum(latency[3]), sum(latency[4]),
             sum(latency[5]), sum(latency[6]), sum(latency[7]), sum(latency[8]),
             sum(latency[9]), sum(latency[10]), sum(latency[11]), sum(latency[12]),
             sum(latency[13])]::bigint[] AS latency
FROM scoped
GROUP BY 1
ORDER BY 1;

-- name: activity_now
-- What is true now, for the overview's cards: endpoints in scope, whether any event was
-- ever sent to them, dead letters (failed deliveries), and the backlog: lanes due and
-- idle, and how long the oldest has waited (s).
-- $1 tenant_id, $2 subscriber id or NULL (the whole tenant)
WITH mine AS (
    SELECT e.id FROM endpoints e
    WHERE e.tenant_id = $1 AND ($2::text IS NULL OR e.subscriber_id = $2)
), due AS (
    SELECT l.ready_at FROM lanes l
    WHERE l.endpoint_id IN (SELECT id FROM mine)
      AND l.ready_at <= now() AND (l.lease_until IS NULL OR l.lease_until < now())
)
SELECT (SELECT count(*) FROM mine) AS endpoints,
       CASE WHEN $2::text IS NULL
            THEN EXISTS (SELECT 1 FROM events ev WHERE ev.tenant_id = $1)
            ELSE EXISTS (SELECT 1 FROM deliveries d
                         WHERE d.endpoint_id IN (SELECT id FROM mine)) END AS has_events,
       (SELECT count(*) FROM deliveries d
        WHERE d.tenant_id = $1 AND d.status = 'failed'
          AND ($2::text IS NULL OR d.endpoint_id IN (SELECT id FROM mine))) AS dead_letters,
       (SELECT count(*) FROM due) AS due_lanes,
       (SELECT coalesce(extract(epoch FROM now() - min(ready_at)), 0)::float8 FROM due)
           AS oldest_due_s;

-- name: failing_endpoints
-- Endpoints whose health needs a look, worst first: disabled, then warned, then failing
-- (failures in a row), longest failing first; with how many there are in all.
-- $1 tenant_id, $2 subscriber id or NULL (the whole tenant), $3 limit
SELECT e.id, e.url, e.description, e.status, e.status_reason, e.consecutive_failures,
       e.failing_since, e.health_warning, e.disabled_at, s.uid AS subscriber,
       count(*) OVER () AS total
FROM endpoints e JOIN subscribers s ON s.id = e.subscriber_id
WHERE e.tenant_id = $1 AND ($2::text IS NULL OR e.subscriber_id = $2)
  AND (e.consecutive_failures > 0 OR e.health_warning > 0 OR e.status = 'disabled')
ORDER BY e.status = 'disabled' DESC, e.health_warning DESC,
         e.failing_since ASC NULLS LAST, e.id
LIMIT $3;
