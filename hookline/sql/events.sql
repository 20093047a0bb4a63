-- name: ingest_event
-- Commit one event and one delivery per active endpoint that wants it, in one statement.
-- Each delivery takes the next sequence number of its lane with an upsert whose row lock
-- is held until commit, so within a lane numbers follow commit order. Lanes are locked in
-- (endpoint_id, key) order, the same order every writer uses, to avoid deadlocks.
-- No row comes back when the named subscriber does not exist.
-- $1 tenant_id, $2 producer id or NULL, $3 type, $4 subject, $5 url, $6 ordering_key,
-- $7 subscriber uid or NULL (broadcast), $8 data (JSON object)
WITH sub AS (
    SELECT id FROM subscribers WHERE tenant_id = $1 AND uid = $7
), ev AS (
    INSERT INTO events (tenant_id, producer_id, type, subject, url, ordering_key,
                        subscriber_id, data)
    SELECT $1, $2, $3, $4, $5, $6, (SELECT id FROM sub), $8
    WHERE $7::text IS NULL OR EXISTS (SELECT 1 FROM sub)
    RETURNING id, created_at
), target AS (
    SELECT e.id AS endpoint_id,
           CASE e.ordering WHEN 'strict' THEN ''
                           WHEN 'keyed' THEN coalesce($6, $4, '')
                           ELSE ev.id END AS key
    FROM endpoints e CROSS JOIN ev
    WHERE e.tenant_id = $1 AND e.status = 'active'
      AND (e.event_types IS NULL OR $3 = ANY (e.event_types))
      AND ($7::text IS NULL OR e.subscriber_id = (SELECT id FROM sub))
), lane AS (
    INSERT INTO lanes AS l (endpoint_id, key, ready_at)
    SELECT endpoint_id, key, now() FROM target ORDER BY endpoint_id, key
    ON CONFLICT (endpoint_id, key) DO UPDATE
        SET next_seq = l.next_seq + 1, ready_at = coalesce(l.ready_at, now())
    RETURNING id, endpoint_id, next_seq
), delivery AS (
    INSERT INTO deliveries (tenant_id, event_id, endpoint_id, lane_id, seq)
    SELECT $1, ev.id, lane.endpoint_id, lane.id, lane.next_seq FROM lane CROSS JOIN ev
    RETURNING 1
)
SELECT ev.id, ev.created_at, (SELECT count(*) FROM delivery) AS deliveries FROM ev;

-- name: get_event
-- One event. $1 tenant_id, $2 event id
SELECT ev.id, ev.producer_id, ev.type, ev.subject, ev.url, ev.ordering_key, ev.data,
       ev.created_at, s.uid AS subscriber
FROM events ev LEFT JOIN subscribers s ON s.id = ev.subscriber_id
WHERE ev.tenant_id = $1 AND ev.id = $2;

-- name: get_event_by_id
-- One event for a signed fetch link (the signature names the tenant). $1 event id
SELECT ev.id, ev.tenant_id, ev.type, ev.subject, ev.url, ev.data, ev.created_at
FROM events ev WHERE ev.id = $1;
