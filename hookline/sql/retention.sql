-- name: retention_tenants
-- Every tenant with the retention it has (its own, else the installation's), in seconds,
-- and where the purge goes on in its events. $1 the installation's retention (s)
SELECT id, coalesce(retention, $1)::float8 AS retention, coalesce(purge_cursor, '') AS after
FROM tenants ORDER BY id;

-- name: save_purge_cursor
-- Where the next pass goes on in a tenant's events (NULL: from the oldest).
-- $1 tenant id, $2 the last event id looked at
UPDATE tenants SET purge_cursor = $2 WHERE id = $1;

-- name: lock_old_events
-- One batch of a tenant's events older than its retention, in id order after a cursor,
-- locked (SKIP LOCKED: one an ingest or a replay is adding a delivery to waits for a later
-- pass). Once an event is locked nobody can add a delivery to it until the commit, so the
-- next statement, with a snapshot taken after this one, sees all of them. Ids are made
-- from the clock, so the batch walks the primary key up to the cutoff.
-- $1 tenant id, $2 retention (s), $3 cursor (the last id of the previous batch, '' first),
-- $4 batch size
WITH cutoff AS (
    SELECT now() - make_interval(secs => $2) AS at
)
SELECT e.id FROM events e, cutoff
WHERE e.tenant_id = $1 AND e.id > $3
  AND e.id < hookline_id_floor('evt', cutoff.at + interval '2 minutes')
  AND e.created_at < cutoff.at
ORDER BY e.id
LIMIT $4
FOR UPDATE OF e SKIP LOCKED;

-- name: purge_events
-- Of the events lock_old_events locked (in this transaction), those whose deliveries are
-- all finished go, with their deliveries, attempts and link-fetch records. Their finished
-- deliveries are locked too (SKIP LOCKED); an event with a delivery that is not finished,
-- or that someone else holds (a replay making it pending again), is kept, and nobody can
-- change a locked one before the commit. $1 event ids
WITH finished AS MATERIALIZED (
    SELECT d.id, d.event_id, d.lane_id FROM deliveries d
    WHERE d.event_id = ANY ($1::text[])
      AND d.status IN ('succeeded', 'failed', 'cancelled')
    FOR UPDATE OF d SKIP LOCKED
), doomed AS MATERIALIZED (
    SELECT c.id FROM unnest($1::text[]) AS c (id)
    WHERE (SELECT count(*) FROM deliveries d WHERE d.event_id = c.id)
        = (SELECT count(*) FROM finished f WHERE f.event_id = c.id)
), attempts_gone AS (
    DELETE FROM attempts a USING finished f
    WHERE a.delivery_id = f.id AND f.event_id IN (SELECT id FROM doomed)
    RETURNING 1
), deliveries_gone AS (
    DELETE FROM deliveries d USING finished f
    WHERE d.id = f.id AND f.event_id IN (SELECT id FROM doomed)
    RETURNING d.lane_id
), fetches_gone AS (
    DELETE FROM event_fetches x WHERE x.event_id IN (SELECT id FROM doomed)
    RETURNING 1
), events_gone AS (
    DELETE FROM events e WHERE e.id IN (SELECT id FROM doomed)
    RETURNING 1
)
SELECT (SELECT count(*) FROM events_gone) AS events,
       (SELECT count(*) FROM deliveries_gone) AS deliveries,
       (SELECT count(*) FROM attempts_gone) AS attempts,
       (SELECT count(*) FROM fetches_gone) AS event_fetches,
       (SELECT coalesce(array_agg(DISTINCT lane_id), '{}') FROM deliveries_gone) AS lanes;

-- name: count_purgeable_events
-- What purge_events would remove of a tenant's events now (for a dry run).
-- $1 tenant id, $2 retention (s)
WITH cutoff AS (
    SELECT now() - make_interval(secs => $2) AS at
), doomed AS (
    SELECT e.id FROM events e, cutoff
    WHERE e.tenant_id = $1
      AND e.id < hookline_id_floor('evt', cutoff.at + interval '2 minutes')
      AND e.created_at < cutoff.at
      AND NOT EXISTS (SELECT 1 FROM deliveries d
                      WHERE d.event_id = e.id AND d.status IN ('pending', 'retrying'))
), gone AS (
    SELECT d.id, d.lane_id FROM deliveries d WHERE d.event_id IN (SELECT id FROM doomed)
), emptied AS (
    SELECT l.id FROM lanes l
    WHERE l.id IN (SELECT lane_id FROM gone) AND l.ready_at IS NULL AND l.lease_until IS NULL
      AND NOT EXISTS (SELECT 1 FROM deliveries d
                      WHERE d.lane_id = l.id AND d.id NOT IN (SELECT id FROM gone))
)
SELECT (SELECT count(*) FROM doomed) AS events,
       (SELECT count(*) FROM gone) AS deliveries,
       (SELECT count(*) FROM attempts a WHERE a.delivery_id IN (SELECT id FROM gone))
           AS attempts,
       (SELECT count(*) FROM event_fetches x WHERE x.event_id IN (SELECT id FROM doomed))
           AS event_fetches,
       (SELECT count(*) FROM emptied) AS lanes;

-- name: lock_empty_lanes
-- Of the lanes the last batch took deliveries from, lock those at rest (nothing due, no
-- lease), tails first as every writer does; a tail an ingest holds, or a lane a worker
-- holds, is skipped. While the tail is locked no delivery can be added to its lane.
-- $1 lane ids
WITH tails AS MATERIALIZED (
    SELECT t.lane_id FROM lane_tails t
    WHERE t.lane_id = ANY ($1::bigint[])
    ORDER BY t.endpoint_id, t.key
    FOR UPDATE OF t SKIP LOCKED
)
SELECT l.id FROM lanes l
WHERE l.id IN (SELECT lane_id FROM tails) AND l.ready_at IS NULL AND l.lease_until IS NULL
ORDER BY l.endpoint_id, l.key
FOR UPDATE OF l SKIP LOCKED;

-- name: delete_empty_lanes
-- The lanes locked by lock_empty_lanes (in the same transaction, so this statement sees
-- every delivery committed before the locks) that hold no delivery; their tails go with
-- them. An ingest that waited on a tail then opens a new lane. $1 lane ids
DELETE FROM lanes l
WHERE l.id = ANY ($1::bigint[])
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.lane_id = l.id)
RETURNING l.id;

-- name: fold_minute_rollups
-- One batch of per-minute rollups older than the cutoff, folded into their hours and
-- removed. $1 cutoff, $2 batch size
WITH old AS MATERIALIZED (
    SELECT r.endpoint_id, r.minute FROM attempt_rollups r
    WHERE r.minute < $1
    ORDER BY r.minute
    LIMIT $2
    FOR UPDATE OF r SKIP LOCKED
), gone AS MATERIALIZED (
    DELETE FROM attempt_rollups r USING old
    WHERE r.endpoint_id = old.endpoint_id AND r.minute = old.minute
    RETURNING r.endpoint_id, date_trunc('hour', r.minute) AS hour, r.tenant_id, r.attempts,
              r.succeeded, r.failed, r.dead_lettered, r.duration_ms, r.latency
), buckets AS (
    SELECT g.endpoint_id, g.hour, b.i, sum(b.n)::int AS n
    FROM gone g, unnest(g.latency) WITH ORDINALITY AS b (n, i)
    GROUP BY g.endpoint_id, g.hour, b.i
), hours AS (
    SELECT g.endpoint_id, g.hour, min(g.tenant_id) AS tenant_id,
           sum(g.attempts)::int AS attempts, sum(g.succeeded)::int AS succeeded,
           sum(g.failed)::int AS failed, sum(g.dead_lettered)::int AS dead_lettered,
           sum(g.duration_ms) AS duration_ms,
           (SELECT array_agg(b.n ORDER BY b.i) FROM buckets b
            WHERE b.endpoint_id = g.endpoint_id AND b.hour = g.hour) AS latency
    FROM gone g
    GROUP BY g.endpoint_id, g.hour
), folded AS (
    INSERT INTO attempt_rollups_hourly AS a (endpoint_id, hour, tenant_id, attempts,
                                             succeeded, failed, dead_lettered, duration_ms,
                                             latency)
    SELECT h.endpoint_id, h.hour, h.tenant_id, h.attempts, h.succeeded, h.failed,
           h.dead_lettered, h.duration_ms, h.latency
    FROM hours h
    -- a rollup whose endpoint was deleted since has nothing to be kept for
    WHERE EXISTS (SELECT 1 FROM endpoints e WHERE e.id = h.endpoint_id)
    ON CONFLICT (endpoint_id, hour) DO UPDATE SET
        attempts = a.attempts + excluded.attempts,
        succeeded = a.succeeded + excluded.succeeded,
        failed = a.failed + excluded.failed,
        dead_lettered = a.dead_lettered + excluded.dead_lettered,
        duration_ms = a.duration_ms + excluded.duration_ms,
        latency = hookline_add_counts(a.latency, excluded.latency)
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS n, (SELECT count(*) FROM folded) AS hours;

-- name: count_minute_rollups
-- Per-minute rollups older than the cutoff. $1 cutoff
SELECT count(*) FROM attempt_rollups WHERE minute < $1;

-- name: purge_hourly_rollups
-- One batch of hourly rollups older than the cutoff. $1 cutoff, $2 batch size
WITH gone AS (
    DELETE FROM attempt_rollups_hourly r
    WHERE (r.endpoint_id, r.hour) IN (SELECT x.endpoint_id, x.hour FROM attempt_rollups_hourly x
                                      WHERE x.hour < $1 ORDER BY x.hour LIMIT $2)
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: count_hourly_rollups
-- Hourly rollups older than the cutoff. $1 cutoff
SELECT count(*) FROM attempt_rollups_hourly WHERE hour < $1;

-- name: purge_replays
-- One batch of a tenant's replays finished longer ago than its retention.
-- $1 tenant id, $2 retention (s), $3 batch size
WITH gone AS (
    DELETE FROM replays r
    WHERE r.id IN (SELECT x.id FROM replays x
                   WHERE x.tenant_id = $1
                     AND x.finished_at < now() - make_interval(secs => $2)
                   LIMIT $3)
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: count_replays
-- A tenant's replays finished longer ago than its retention. $1 tenant id, $2 retention (s)
SELECT count(*) FROM replays
WHERE tenant_id = $1 AND finished_at < now() - make_interval(secs => $2);

-- name: purge_sessions
-- One batch of expired dashboard and portal sessions. $1 batch size
WITH gone AS (
    DELETE FROM sessions s
    WHERE s.token_hash IN (SELECT x.token_hash FROM sessions x WHERE x.expires_at < now()
                           LIMIT $1)
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: count_sessions
-- Expired sessions. No parameters.
SELECT count(*) FROM sessions WHERE expires_at < now();

-- name: purge_portal_links
-- One batch of portal links (used or not) expired longer ago than they are kept.
-- $1 how long an expired link is kept (s), $2 batch size
WITH gone AS (
    DELETE FROM portal_links p
    WHERE p.token_hash IN (SELECT x.token_hash FROM portal_links x
                           WHERE x.expires_at < now() - make_interval(secs => $1)
                           LIMIT $2)
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: count_portal_links
-- Portal links expired longer ago than they are kept. $1 how long (s)
SELECT count(*) FROM portal_links WHERE expires_at < now() - make_interval(secs => $1);

-- name: purge_notices
-- One batch of operational notices that could not be published within their lifetime
-- (the endpoint they are about, or the operational one, long gone or failing).
-- $1 lifetime (s), $2 batch size
WITH gone AS (
    DELETE FROM operational_notices n
    WHERE n.id IN (SELECT x.id FROM operational_notices x
                   WHERE x.created_at < now() - make_interval(secs => $1)
                   ORDER BY x.id LIMIT $2)
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: count_notices
-- Operational notices past their lifetime. $1 lifetime (s)
SELECT count(*) FROM operational_notices WHERE created_at < now() - make_interval(secs => $1);

-- name: storage
-- What the purge keeps in check: each table's size on disk (indexes and TOAST included)
-- and its rows as last estimated by (auto)vacuum or analyze (NULL: never yet).
SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END AS rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'r'
ORDER BY bytes DESC;

-- name: oldest_event
-- When the oldest event a tenant keeps was accepted (ids sort by time). $1 tenant id
SELECT created_at FROM events WHERE tenant_id = $1 ORDER BY id LIMIT 1;
