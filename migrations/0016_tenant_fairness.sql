-- Fairness between tenants (claims take lanes tenant by tenant, so one tenant's backlog is
-- never ahead of another's), lanes of saturated endpoints kept out of the claims' way, and
-- indexes that deleting an endpoint with many lanes needs.

-- A lane's tenant, copied from its endpoint (which never changes tenant), so a claim can
-- walk each tenant's due lanes by index.
ALTER TABLE lanes ADD COLUMN tenant_id text;
UPDATE lanes l SET tenant_id = e.tenant_id FROM endpoints e WHERE e.id = l.endpoint_id;
ALTER TABLE lanes ALTER COLUMN tenant_id SET NOT NULL;

-- A due lane whose endpoint cannot take another request now (at its max_in_flight, or this
-- worker's share of it) is moved out of the way: `deferred`, due a little later, and woken
-- as soon as a lane of its endpoint is released. Without it, a claim would read past every
-- such lane again and again to find one it may send.
ALTER TABLE lanes ADD COLUMN deferred boolean NOT NULL DEFAULT false;


-- A leased lane is due when its lease runs out (a worker that died holding it), not before:
-- claims and idle waits no longer read leased lanes as due ones.
UPDATE lanes SET ready_at = lease_until WHERE lease_until > now() AND ready_at IS NOT NULL;

-- Expiry times are bounded at the API (hookline.moments); the database refuses the rest,
-- so +-infinity or a year-1 date never reach a worker. NOT VALID: checked for new rows
-- without scanning the old ones.
ALTER TABLE events ADD CONSTRAINT events_expires_at_range
    CHECK (expires_at BETWEEN '1970-01-01T00:00:00Z' AND '9999-12-31T00:00:00Z') NOT VALID;

-- outside the transaction
-- claims walk each tenant's due lanes, and wake deferred lanes by endpoint
CREATE INDEX CONCURRENTLY IF NOT EXISTS lanes_tenant_ready_idx ON lanes (tenant_id, ready_at)
    WHERE ready_at IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS lanes_ready_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS lanes_deferred_idx ON lanes (endpoint_id, ready_at)
    WHERE deferred;
-- Deleting a lane (with its endpoint) deletes its deliveries: without an index on lane_id
-- (the head index covers only unfinished ones) every lane cost a scan of all deliveries.
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_lane_idx ON deliveries (lane_id);
-- Deleting an endpoint sets its fetch records' endpoint_id to NULL: the same, by endpoint.
CREATE INDEX CONCURRENTLY IF NOT EXISTS event_fetches_endpoint_idx ON event_fetches (endpoint_id)
    WHERE endpoint_id IS NOT NULL;
