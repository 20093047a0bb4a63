-- A lane's tail (the last sequence number given out) gets its own row. Ingest numbers a
-- lane's deliveries under a row lock held until commit, so that numbers follow commit
-- order; that lock used to be on the lanes row, which workers lock too (to lease a lane and
-- to record what its attempts did), so the ingest of a hot lane waited on the worker's
-- transactions and the worker on ingest's. Now writers of deliveries lock the tail and
-- workers the lane: the two only meet when ingest wakes a lane that had nothing to send.
--   endpoint_id, key  the lane's identity, as in lanes
--   lane_id           the lanes row; a new lane takes its id here, with its tail
--   next_seq          the last sequence number given out in the lane
CREATE TABLE lane_tails (
    endpoint_id  text NOT NULL,
    key          text NOT NULL,
    lane_id      bigint NOT NULL DEFAULT nextval('lanes_id_seq'),
    next_seq     bigint NOT NULL,
    PRIMARY KEY (endpoint_id, key)
);
INSERT INTO lane_tails (endpoint_id, key, lane_id, next_seq)
SELECT endpoint_id, key, id, next_seq FROM lanes;
-- after the copy (checking it row by row would cost more than building it)
ALTER TABLE lane_tails ADD CONSTRAINT lane_tails_lane_id_fkey
    FOREIGN KEY (lane_id) REFERENCES lanes ON DELETE CASCADE;
CREATE UNIQUE INDEX lane_tails_lane_idx ON lane_tails (lane_id);
ALTER TABLE lanes DROP COLUMN next_seq;


-- The lane a delivery of an event goes into, by its endpoint's ordering: the endpoint
-- (strict), the endpoint and the event's ordering key or else its subject (keyed), or the
-- event alone (none).
CREATE FUNCTION hookline_lane_key(ordering text, ordering_key text, subject text,
                                  event_id text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE ordering WHEN 'strict' THEN ''
                         WHEN 'keyed' THEN coalesce(ordering_key, subject, '')
                         ELSE event_id END
$$;

-- Take counts[i] sequence numbers at the end of lane (endpoint_ids[i], lane_keys[i]) for the
-- caller's new deliveries, opening lanes that do not exist yet: the one way ingest and
-- replays number deliveries. Tails are locked in (endpoint_id, key) order until the
-- caller commits, so numbers follow commit order. A lane that was idle is scheduled now;
-- `unsure` marks the others, which the caller looks at again once committed
-- (hookline/lanes.py). next_seq is the last number taken: the caller's deliveries are
-- next_seq - count + 1 .. next_seq.
CREATE FUNCTION hookline_take_lane_numbers(tenant text, endpoint_ids text[],
                                           lane_keys text[], counts bigint[])
RETURNS TABLE (endpoint_id text, key text, lane_id bigint, next_seq bigint, unsure boolean)
LANGUAGE sql VOLATILE AS $$
    WITH tail AS (
        INSERT INTO lane_tails AS l (endpoint_id, key, next_seq)
        SELECT w.endpoint_id, w.key, w.n
        FROM unnest(endpoint_ids, lane_keys, counts) AS w(endpoint_id, key, n)
        ORDER BY w.endpoint_id, w.key
        ON CONFLICT ON CONSTRAINT lane_tails_pkey
            DO UPDATE SET next_seq = l.next_seq + excluded.next_seq
        RETURNING l.lane_id, l.endpoint_id, l.key, l.next_seq, l.xmax = 0 AS created
    ), opened AS (
        INSERT INTO lanes (id, tenant_id, endpoint_id, key, ready_at)
        SELECT t.lane_id, tenant, t.endpoint_id, t.key, now() FROM tail t WHERE t.created
    ), woken AS (
        UPDATE lanes l SET ready_at = now()
        FROM (SELECT x.id FROM lanes x
              WHERE x.id IN (SELECT t.lane_id FROM tail t WHERE NOT t.created)
                AND x.ready_at IS NULL
              ORDER BY x.endpoint_id, x.key
              FOR NO KEY UPDATE) w
        WHERE l.id = w.id AND l.ready_at IS NULL
        RETURNING l.id
    )
    SELECT t.endpoint_id, t.key, t.lane_id, t.next_seq,
           NOT t.created AND t.lane_id NOT IN (SELECT w.id FROM woken w)
    FROM tail t
$$;
