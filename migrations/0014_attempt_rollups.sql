-- Per-minute rollups of attempts, per endpoint: the read model the dashboard counts and
-- charts from, so its pages cost the same with a thousand attempts or a billion. Kept up
-- to date in the transaction that records attempts (delivery/sql/rollups.sql); attempts
-- stay append-only and are never scanned to draw a page.
--   minute         the UTC minute the attempts started in
--   attempts       attempts sent; succeeded (2xx) + failed (anything else, no answer too)
--   dead_lettered  deliveries whose last attempt in this minute dead-lettered them
--   duration_ms    the sum of the attempts' durations (the mean is duration_ms / attempts)
--   latency        how many attempts took how long: one count per bucket of
--                  hookline_latency_bounds(), bucket i holding durations from bound i-1
--                  (0 for the first) up to bound i, and a last bucket for the rest
CREATE TABLE attempt_rollups (
    endpoint_id    text NOT NULL REFERENCES endpoints ON DELETE CASCADE,
    minute         timestamptz NOT NULL,
    tenant_id      text NOT NULL,
    attempts       integer NOT NULL,
    succeeded      integer NOT NULL,
    failed         integer NOT NULL,
    dead_lettered  integer NOT NULL,
    duration_ms    double precision NOT NULL,
    latency        integer[] NOT NULL CHECK (cardinality(latency) = 13),
    PRIMARY KEY (endpoint_id, minute)
);
-- the tenant's charts read by time; a subscriber's join its endpoints to the same rows
CREATE INDEX attempt_rollups_tenant_idx ON attempt_rollups (tenant_id, minute);

-- The upper bounds (ms) of the latency buckets. Changing them means rebuilding every row:
-- dashboard code keeps the same list (hookline/activity.py) and a test holds them equal.
CREATE FUNCTION hookline_latency_bounds() RETURNS real[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{5,10,25,50,100,250,500,1000,2500,5000,10000,30000}'::real[]
$$;

-- Two histograms added bucket by bucket (merging a batch into a minute's row). Written
-- out for the 13 buckets, so the planner inlines it: no function call per row.
CREATE FUNCTION hookline_add_counts(a integer[], b integer[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5],
                 a[6] + b[6], a[7] + b[7], a[8] + b[8], a[9] + b[9], a[10] + b[10],
                 a[11] + b[11], a[12] + b[12], a[13] + b[13]]
$$;

-- What happened before this migration, rolled up from the attempts already recorded (a
-- failed delivery counts as dead-lettered in the minute of its last attempt).
WITH r AS (
    SELECT d.endpoint_id, date_trunc('minute', a.started_at, 'UTC') AS minute, a.duration_ms,
           coalesce(a.status_code BETWEEN 200 AND 299, false) AS ok,
           width_bucket(a.duration_ms, hookline_latency_bounds()) + 1 AS b,
           d.status = 'failed' AND a.n = d.attempts AS dead
    FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
)
INSERT INTO attempt_rollups (endpoint_id, minute, tenant_id, attempts, succeeded, failed,
                             dead_lettered, duration_ms, latency)
SELECT r.endpoint_id, r.minute, min(e.tenant_id), count(*), count(*) FILTER (WHERE r.ok),
       count(*) FILTER (WHERE NOT r.ok), count(*) FILTER (WHERE r.dead), sum(r.duration_ms),
       ARRAY[count(*) FILTER (WHERE b = 1), count(*) FILTER (WHERE b = 2),
             count(*) FILTER (WHERE b = 3), count(*) FILTER (WHERE b = 4),
             count(*) FILTER (WHERE b = 5), count(*) FILTER (WHERE b = 6),
             count(*) FILTER (WHERE b = 7), count(*) FILTER (WHERE b = 8),
             count(*) FILTER (WHERE b = 9), count(*) FILTER (WHERE b = 10),
             count(*) FILTER (WHERE b = 11), count(*) FILTER (WHERE b = 12),
             count(*) FILTER (WHERE b = 13)]::int[]
FROM r JOIN endpoints e ON e.id = r.endpoint_id
GROUP BY r.endpoint_id, r.minute;
