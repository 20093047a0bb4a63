-- Retention (hookline/retention.py): a tenant's own period, rollups kept by the hour once
-- their minutes are gone, and the indexes the purge's batches walk.

-- seconds an event is kept once all of its deliveries are finished; NULL: the
-- installation's (HOOKLINE_RETENTION)
ALTER TABLE tenants ADD COLUMN retention integer
    CHECK (retention BETWEEN 3600 AND 3650 * 86400);
-- where the purge goes on in a tenant's events next pass (NULL: from the oldest), so a
-- tenant with a vast history it may not lose yet (a paused endpoint's) costs each pass a
-- bounded share, and the next pass looks further
ALTER TABLE tenants ADD COLUMN purge_cursor text;

-- attempt_rollups by the hour: what the purge folds a minute row into when the minutes
-- are older than the weeks they are kept for; kept for HOOKLINE_ROLLUP_RETENTION
CREATE TABLE attempt_rollups_hourly (
    endpoint_id text NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    hour timestamptz NOT NULL,
    tenant_id text NOT NULL,
    attempts integer NOT NULL,
    succeeded integer NOT NULL,
    failed integer NOT NULL,
    dead_lettered integer NOT NULL,
    duration_ms double precision NOT NULL,
    latency integer[] NOT NULL CHECK (cardinality(latency) = 13),
    PRIMARY KEY (endpoint_id, hour)
);
CREATE INDEX attempt_rollups_hourly_tenant_idx ON attempt_rollups_hourly (tenant_id, hour);

-- outside the transaction
-- removing an event removes its link-fetch records: by event, not by a scan of them all
CREATE INDEX CONCURRENTLY IF NOT EXISTS event_fetches_event_idx ON event_fetches (event_id);
-- the oldest rollup minutes, across endpoints, for the fold into hours
CREATE INDEX CONCURRENTLY IF NOT EXISTS attempt_rollups_minute_idx ON attempt_rollups (minute);
-- finished replays, oldest first
CREATE INDEX CONCURRENTLY IF NOT EXISTS replays_finished_idx ON replays (finished_at)
    WHERE finished_at IS NOT NULL;
