-- name: lock_lanes
-- Lock lanes in the order every writer of lanes uses, (endpoint_id, key), before changing
-- their deliveries: recording, replays, cancelling and resuming all take them this way
-- (and the statements that lock lanes themselves sort them the same), so none deadlocks
-- with another. NO KEY UPDATE, as every lock on lanes: the foreign-key checks of
-- deliveries being written never wait on it. $1 lane ids
SELECT id FROM lanes WHERE id = ANY ($1::bigint[]) ORDER BY endpoint_id, key
FOR NO KEY UPDATE;

-- name: wake_lanes
-- Schedule those of these lanes that have something to send but no due time and no
-- holder: a statement saw them empty while an ingest into them had not committed (see
-- hookline/lanes.py). Run after the commit that could have left them so; returns the
-- lanes woken. $1 lane ids
UPDATE lanes l SET ready_at = hookline_head_due(l.id)
WHERE l.id = ANY ($1::bigint[]) AND l.ready_at IS NULL AND l.lease_until IS NULL
  AND hookline_head_due(l.id) IS NOT NULL
RETURNING l.id;

-- name: wake_stranded_lanes
-- The safety net behind wake_lanes, for a process that died between a commit and its
-- wake_lanes: schedule the lanes of active endpoints that have a delivery made in the last
-- $1 seconds still to send, but no due time and no holder. Delivery ids begin with their
-- time (hookline_id), so the recent ones are a range of the primary key.
WITH recent AS (
    SELECT DISTINCT d.lane_id FROM deliveries d
    WHERE d.id >= 'dlv_' || lpad(to_hex(floor(extract(epoch FROM
                                  now() - make_interval(secs => $1)) * 1000)::bigint), 12, '0')
      AND d.status IN ('pending', 'retrying')
)
UPDATE lanes l SET ready_at = hookline_head_due(l.id)
FROM recent r, endpoints e
WHERE l.id = r.lane_id AND e.id = l.endpoint_id AND e.status = 'active'
  AND l.ready_at IS NULL AND l.lease_until IS NULL
  AND hookline_head_due(l.id) IS NOT NULL
RETURNING l.id;

-- name: reschedule_lanes
-- Point idle lanes at their (possibly new) head after deliveries were cancelled or
-- revived; a leased lane is left to its holder, whose release recomputes it. Returns the
-- lanes of active endpoints found with nothing to send, for wake_lanes after the commit.
-- $1 lane ids (locked by the caller)
UPDATE lanes l
SET ready_at = CASE WHEN e.status = 'active' THEN hookline_head_due(l.id) END
FROM endpoints e
WHERE l.id = ANY ($1::bigint[]) AND e.id = l.endpoint_id
  AND (l.lease_until IS NULL OR l.lease_until < now())
RETURNING CASE WHEN e.status = 'active' AND l.ready_at IS NULL THEN l.id END AS empty;
