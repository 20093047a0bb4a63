-- Isolation between endpoints: how many deliveries an endpoint may have in flight at once
-- (across every worker) and how fast it may be sent to (its rate_limit), both decided
-- when lanes are claimed.


-- Pacing of endpoints with a rate_limit, as a generic cell rate algorithm: tat is the
-- theoretical arrival time of the next delivery; nothing more may be sent before free_at
-- (tat less the burst the rate allows). Only claims write it, under the claim lock.
CREATE TABLE endpoint_pace (
    endpoint_id  text PRIMARY KEY REFERENCES endpoints ON DELETE CASCADE,
    tat          timestamptz NOT NULL,
    free_at      timestamptz NOT NULL
);

-- Endpoints that may not be given another lane now: as many lanes leased as the endpoint
-- allows in flight (one for strict), or out of rate until free_at. Claims skip their
-- lanes, and a worker's idle wait ignores them, so a saturated endpoint neither holds up
-- other endpoints' lanes nor keeps workers spinning.
CREATE FUNCTION hookline_blocked_endpoints() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT b.endpoint_id
    FROM (SELECT endpoint_id, count(*) AS n FROM lanes
          WHERE lease_until > now() GROUP BY endpoint_id) b
    JOIN endpoints e ON e.id = b.endpoint_id
    WHERE b.n >= CASE WHEN e.ordering = 'strict' THEN 1 ELSE e.max_in_flight END
    UNION
    SELECT endpoint_id FROM endpoint_pace WHERE free_at > now()
$$;

-- Parallel lanes (keyed, none) get ten requests in flight unless told otherwise: one
-- would make `none` as serial as `strict`.
ALTER TABLE endpoints ALTER COLUMN max_in_flight SET DEFAULT 10;

-- outside the transaction
-- Leased lanes, by endpoint: what "in flight" counts. Small: only lanes a worker holds
-- (or held, until a dead worker's lease is taken over).
CREATE INDEX CONCURRENTLY IF NOT EXISTS lanes_leased_idx ON lanes (endpoint_id)
    WHERE lease_until IS NOT NULL;
