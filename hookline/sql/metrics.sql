-- name: metrics_gauges
-- What /metrics reads from Postgres at scrape time: due idle lanes, how long the oldest has
-- waited (s), and dead-lettered deliveries. No parameters.
SELECT
    (SELECT count(*) FROM lanes
     WHERE ready_at <= now() AND (lease_until IS NULL OR lease_until < now())) AS due_lanes,
    (SELECT coalesce(extract(epoch FROM now() - min(ready_at)), 0)::float8 FROM lanes
     WHERE ready_at <= now() AND (lease_until IS NULL OR lease_until < now())) AS due_oldest,
    (SELECT count(*) FROM deliveries WHERE status = 'failed') AS dead_letters;
