-- name: ingest_events
-- Commit the events of one or more requests and one delivery per endpoint that wants
-- each, in one statement. Each request stands alone: it is written when every one of its
-- events names a subscriber that exists and its events make at most $12 deliveries (a
-- tenant's quota; NULL: no limit); otherwise none of its events are, and its rows say why
-- (subscriber_ok, fanout). An event whose producer id is taken is skipped (taken); when that
-- splits a request of several events, hookline_batch_taken() raises and nothing at all is
-- written, so a batch stays all or nothing. Group commit sends many one-event requests
-- here at once; a batch comes alone as one request.
-- Each lane gives as many sequence numbers as the statement sends it
-- (hookline_take_lane_numbers: under its tail's row lock, held until commit), so within a
-- lane numbers follow commit order, and input order within the statement. The first row's
-- `unsure` lists the lanes to look at again once committed (hookline/lanes.py).
-- $1 tenant_id, $2 producer ids, $3 types, $4 subjects, $5 urls, $6 ordering keys,
-- $7 subscriber uids (NULL: broadcast), $8 data, $9 schema versions, $10 expiry times,
-- $11 the only endpoint to deliver to, or NULL for all that want the events,
-- $12 the most deliveries one request may make, or NULL for no limit,
-- $13 the request each event belongs to
WITH input AS MATERIALIZED (
    SELECT hookline_id('evt') AS id, i.*, s.id AS subscriber_id,
           (i.subscriber IS NULL OR s.id IS NOT NULL) AS subscriber_ok
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::jsonb[], $9::int[], $10::timestamptz[], $13::int[])
         WITH ORDINALITY AS i(producer_id, type, subject, url, ordering_key, subscriber,
                              data, schema_version, expires_at, request, n)
    LEFT JOIN subscribers s ON s.tenant_id = $1 AND s.uid = i.subscriber
), wanted AS (
    -- one row per (endpoint, type it wants), type NULL for "every type", so events meet
    -- endpoints by a hash join on the type rather than a scan of every pair
    -- (a paused endpoint still collects deliveries: they wait for resume; a disabled
    -- one does not)
    SELECT e.id, e.ordering, e.subscriber_id, e.schema_version, w.type
    FROM endpoints e LEFT JOIN LATERAL unnest(e.event_types) AS w(type) ON true
    WHERE e.tenant_id = $1 AND e.status <> 'disabled' AND ($11::text IS NULL OR e.id = $11)
), matched AS MATERIALIZED (
    SELECT i.id AS event_id, i.n, i.request, i.subject, i.ordering_key, w.id AS endpoint_id,
           w.ordering
    FROM input i JOIN wanted w ON w.type = i.type
    WHERE (i.subscriber IS NULL OR w.subscriber_id = i.subscriber_id)
      AND (w.schema_version IS NULL OR w.schema_version = i.schema_version)
    UNION ALL
    SELECT i.id, i.n, i.request, i.subject, i.ordering_key, w.id, w.ordering
    FROM input i JOIN wanted w ON w.type IS NULL
    WHERE (i.subscriber IS NULL OR w.subscriber_id = i.subscriber_id)
      AND (w.schema_version IS NULL OR w.schema_version = i.schema_version)
), fanout AS MATERIALIZED (
    SELECT request, count(*) AS n FROM matched GROUP BY request
), verdict AS MATERIALIZED (
    SELECT i.request, bool_and(i.subscriber_ok)
           AND ($12::bigint IS NULL OR coalesce(max(f.n), 0) <= $12) AS ok
    FROM input i LEFT JOIN fanout f USING (request)
    GROUP BY i.request
), ev AS (
    INSERT INTO events (id, tenant_id, producer_id, type, subject, url, ordering_key,
                        subscriber_id, data, schema_version, expires_at)
    SELECT i.id, $1, i.producer_id, i.type, i.subject, i.url, i.ordering_key,
           i.subscriber_id, i.data, i.schema_version, i.expires_at
    FROM input i JOIN verdict v ON v.request = i.request AND v.ok
    ORDER BY i.n
    ON CONFLICT (tenant_id, producer_id) DO NOTHING
    RETURNING id, created_at
), target AS MATERIALIZED (
    SELECT m.event_id, m.n, m.endpoint_id, l.key,
           count(*) OVER lane_window AS lane_n,
           row_number() OVER (lane_window ORDER BY m.n) AS lane_pos
    FROM matched m JOIN ev ON ev.id = m.event_id
    CROSS JOIN LATERAL (SELECT hookline_lane_key(m.ordering, m.ordering_key, m.subject,
                                                 m.event_id) AS key) l
    WINDOW lane_window AS (PARTITION BY m.endpoint_id, l.key)
), lane_counts AS MATERIALIZED (
    SELECT endpoint_id, key, max(lane_n) AS n FROM target GROUP BY endpoint_id, key
), tail AS MATERIALIZED (
    SELECT * FROM hookline_take_lane_numbers(
        $1,
        ARRAY(SELECT endpoint_id FROM lane_counts ORDER BY endpoint_id, key),
        ARRAY(SELECT key FROM lane_counts ORDER BY endpoint_id, key),
        ARRAY(SELECT n FROM lane_counts ORDER BY endpoint_id, key))
), delivery AS (
    INSERT INTO deliveries (tenant_id, event_id, endpoint_id, lane_id, seq)
    SELECT $1, t.event_id, t.endpoint_id, tail.lane_id, tail.next_seq - t.lane_n + t.lane_pos
    FROM target t JOIN tail USING (endpoint_id, key)
    RETURNING event_id
), fanned AS (
    SELECT event_id, count(*) AS deliveries FROM delivery GROUP BY event_id
), outcome AS (
    SELECT i.n, i.id, i.request, ev.created_at, i.subscriber_ok, coalesce(f.n, 0) AS fanout,
           v.ok AS request_ok, (v.ok AND ev.id IS NULL) AS taken,
           coalesce(d.deliveries, 0) AS deliveries,
           count(ev.id) OVER (PARTITION BY i.request) AS written,
           count(*) OVER (PARTITION BY i.request) AS events
    FROM input i
    JOIN verdict v ON v.request = i.request
    LEFT JOIN fanout f ON f.request = i.request
    LEFT JOIN ev ON ev.id = i.id
    LEFT JOIN fanned d ON d.event_id = i.id
)
SELECT id, created_at, subscriber_ok, fanout, request_ok, taken, deliveries,
       CASE WHEN written > 0 AND written < events THEN hookline_batch_taken() END AS split,
       CASE WHEN n = 1 THEN ARRAY(SELECT lane_id FROM tail WHERE unsure) END AS unsure
FROM outcome
ORDER BY n;

-- name: existing_producer_ids
-- Which of these producer ids the tenant has used already. $1 tenant_id, $2 producer ids
SELECT producer_id FROM events WHERE tenant_id = $1 AND producer_id = ANY ($2::text[]);

-- name: get_event
-- One event; with a subscriber, only if it was delivered to one of its endpoints.
-- $1 tenant_id, $2 event id, $3 subscriber id or NULL
SELECT ev.id, ev.producer_id, ev.type, ev.subject, ev.url, ev.ordering_key, ev.data,
       ev.created_at, ev.schema_version, ev.expires_at, ev.cancelled_at, s.uid AS subscriber
FROM events ev LEFT JOIN subscribers s ON s.id = ev.subscriber_id
WHERE ev.tenant_id = $1 AND ev.id = $2
  AND ($3::text IS NULL OR EXISTS (
      SELECT 1 FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id
      WHERE d.event_id = ev.id AND e.subscriber_id = $3));

-- name: list_events
-- A page of events, newest first. $1 tenant_id, $2 type or NULL, $3 subscriber uid or
-- NULL, $4 created at or after, or NULL, $5 created before, or NULL, $6 cursor or NULL,
-- $7 limit, $8 subscriber id or NULL: only events delivered to that subscriber's
-- endpoints (a portal session)
SELECT ev.id, ev.producer_id, ev.type, ev.subject, ev.url, ev.ordering_key, ev.data,
       ev.created_at, ev.schema_version, ev.expires_at, ev.cancelled_at, s.uid AS subscriber
FROM events ev LEFT JOIN subscribers s ON s.id = ev.subscriber_id
WHERE ev.tenant_id = $1
  AND ($2::text IS NULL OR ev.type = $2)
  AND ($3::text IS NULL OR s.uid = $3)
  AND ($4::timestamptz IS NULL OR ev.created_at >= $4)
  AND ($5::timestamptz IS NULL OR ev.created_at < $5)
  AND ($6::text IS NULL OR ev.id < $6)
  AND ($8::text IS NULL OR EXISTS (
      SELECT 1 FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id
      WHERE d.event_id = ev.id AND e.subscriber_id = $8))
ORDER BY ev.id DESC LIMIT $7;

-- name: event_delivery_summary
-- How many deliveries of an event are in each status. $1 tenant_id, $2 event id,
-- $3 subscriber id or NULL: only deliveries to that subscriber's endpoints
SELECT d.status, count(*) AS n FROM deliveries d
WHERE d.tenant_id = $1 AND d.event_id = $2
  AND ($3::text IS NULL OR d.endpoint_id IN (SELECT id FROM endpoints WHERE subscriber_id = $3))
GROUP BY d.status;

-- name: event_fetches
-- The latest fetches of an event's content link. $1 tenant_id, $2 event id,
-- $3 subscriber id or NULL: only fetches through links made for its endpoints
SELECT f.fetched_at, f.endpoint_id, f.address
FROM event_fetches f JOIN events ev ON ev.id = f.event_id
WHERE ev.tenant_id = $1 AND f.event_id = $2
  AND ($3::text IS NULL OR f.endpoint_id IN (SELECT id FROM endpoints WHERE subscriber_id = $3))
ORDER BY f.id DESC LIMIT 50;

-- name: event_fanouts
-- How many deliveries each of some events has in each status, for a list of events.
-- $1 tenant_id, $2 event ids, $3 subscriber id or NULL: only deliveries to its endpoints
SELECT d.event_id, d.status, count(*) AS n FROM deliveries d
WHERE d.tenant_id = $1 AND d.event_id = ANY ($2::text[])
  AND ($3::text IS NULL OR d.endpoint_id IN (SELECT id FROM endpoints WHERE subscriber_id = $3))
GROUP BY d.event_id, d.status;

-- name: event_deliveries
-- An event's deliveries with their endpoints, in the order they were made.
-- $1 tenant_id, $2 event id, $3 subscriber id or NULL: only deliveries to its endpoints,
-- $4 limit
SELECT d.id, d.status, d.attempts, d.last_status, d.last_error, d.next_attempt_at,
       d.updated_at, e.id AS endpoint_id, e.url AS endpoint_url, s.uid AS subscriber
FROM deliveries d
JOIN endpoints e ON e.id = d.endpoint_id
JOIN subscribers s ON s.id = e.subscriber_id
WHERE d.tenant_id = $1 AND d.event_id = $2 AND ($3::text IS NULL OR e.subscriber_id = $3)
ORDER BY d.id
LIMIT $4;

-- name: get_event_content
-- The event behind a signed fetch link, recording the fetch. The signature names the
-- event; the tenant comes from the event. $1 event id, $2 endpoint id the link was made
-- for, $3 the fetcher's address
WITH ev AS (
    SELECT ev.id, ev.tenant_id, ev.type, ev.subject, ev.url, ev.data, ev.created_at,
           ev.schema_version
    FROM events ev WHERE ev.id = $1
), logged AS (
    INSERT INTO event_fetches (event_id, endpoint_id, address)
    SELECT ev.id, (SELECT e.id FROM endpoints e WHERE e.id = $2 AND e.tenant_id = ev.tenant_id), $3
    FROM ev
)
SELECT * FROM ev;

-- name: lock_event_lanes
-- Lock the lanes of an event's unfinished deliveries, in the order every writer uses.
-- $1 tenant_id, $2 event id
SELECT l.id FROM lanes l
WHERE l.id IN (SELECT d.lane_id FROM deliveries d
               WHERE d.tenant_id = $1 AND d.event_id = $2
                 AND d.status IN ('pending', 'retrying'))
ORDER BY l.endpoint_id, l.key
FOR NO KEY UPDATE;

-- name: cancel_event
-- Mark an event cancelled and cancel its unfinished deliveries (run after
-- lock_event_lanes). Returns nothing when the event does not exist.
-- $1 tenant_id, $2 event id
WITH ev AS (
    UPDATE events SET cancelled_at = coalesce(cancelled_at, now())
    WHERE tenant_id = $1 AND id = $2
    RETURNING id
), cancelled AS (
    UPDATE deliveries SET status = 'cancelled', updated_at = now()
    WHERE event_id IN (SELECT id FROM ev) AND status IN ('pending', 'retrying')
    RETURNING lane_id
)
SELECT ev.id, (SELECT count(*) FROM cancelled) AS cancelled FROM ev;

-- name: link_secrets
-- The signing secrets (sealed) still signing for an endpoint that was sent an event, with
-- its tenant; nothing when the endpoint is gone or never had the event.
-- $1 event id, $2 endpoint id
SELECT s.secret, e.tenant_id
FROM endpoints e JOIN endpoint_secrets s ON s.endpoint_id = e.id
WHERE e.id = $2 AND (s.expires_at IS NULL OR s.expires_at > now())
  AND EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = $1 AND d.endpoint_id = e.id)
ORDER BY s.created_at DESC;
