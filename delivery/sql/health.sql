-- name: record_health
-- Keep each endpoint's failing run up to date from a batch of attempt results, in the
-- transaction that records them (after move_deliveries, before release_lanes), and write
-- the operational notices they call for: endpoint.failing once the run has lasted 50% and
-- again 90% of the disable period, endpoint.disabled (and the endpoint disabled) at 100%,
-- endpoint.recovered at the first success after a warning, a disable, or a run of half
-- the period, and delivery.failed for each delivery the batch dead-lettered; notices
-- only where the tenant has an operational endpoint and they are not about that one.
-- Only active endpoints change (a result that was in flight when its endpoint stopped
-- says nothing new), and only those whose health does: a healthy endpoint's successes
-- write nothing. Endpoint rows are locked in id order, so recorders never deadlock.
-- One row per attempt sent (an expired event's delivery, never sent, is left out):
-- $1 endpoint ids, $2 delivery ids, $3 lane ids, $4 lease numbers, $5 new delivery
-- statuses, $6 attempt start times, $7 HTTP statuses, $8 errors; $9 the installation's
-- disable period (s). Returns how many notices were written.
WITH r AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[],
                         $6::timestamptz[], $7::int[], $8::text[])
        AS r(endpoint_id, delivery_id, lane_id, lease_no, status, started_at, status_code,
             error)
), last_ok AS (
    SELECT endpoint_id, max(started_at) FILTER (WHERE status = 'succeeded') AS at
    FROM r GROUP BY endpoint_id
), outcome AS (
    -- per endpoint: its last success in the batch, and the failures since
    SELECT o.endpoint_id, o.at AS last_ok_at, count(f.delivery_id) AS failures,
           min(f.started_at) AS first_failure,
           (array_agg(f.status_code ORDER BY f.started_at DESC))[1] AS last_status,
           (array_agg(f.error ORDER BY f.started_at DESC))[1] AS last_error
    FROM last_ok o
    LEFT JOIN r f ON f.endpoint_id = o.endpoint_id AND f.status <> 'succeeded'
                 AND (o.at IS NULL OR f.started_at > o.at)
    GROUP BY o.endpoint_id, o.at
), locked AS MATERIALIZED (
    -- the locked rows are the latest versions: read every column needed from here
    SELECT e.id, e.tenant_id, e.url, e.subscriber_id, e.consecutive_failures,
           e.failing_since, e.health_warning, e.disabled_at,
           coalesce(e.disable_after, t.disable_after, $9::float8) AS period,
           -- someone to tell: the tenant has an operational endpoint, and it is another
           coalesce(t.operational_endpoint_id <> e.id, false) AS told
    FROM endpoints e
    JOIN outcome o ON o.endpoint_id = e.id
    JOIN tenants t ON t.id = e.tenant_id
    WHERE e.status = 'active'
      AND (o.failures > 0 OR e.failing_since IS NOT NULL OR e.consecutive_failures > 0
           OR e.health_warning > 0 OR e.disabled_at IS NOT NULL)
    ORDER BY e.id
    FOR NO KEY UPDATE OF e
), run AS (
    -- the run after this batch: a success in it ends the old run, failures after that
    -- success start a new one
    SELECT l.*, o.failures, o.last_ok_at, o.last_status, o.last_error,
           make_interval(secs => l.period) AS period_i,
           CASE WHEN o.failures = 0 THEN NULL
                WHEN o.last_ok_at IS NULL THEN coalesce(l.failing_since, o.first_failure)
                ELSE o.first_failure END AS since,
           CASE WHEN o.last_ok_at IS NULL THEN l.consecutive_failures + o.failures
                ELSE o.failures END AS in_row,
           CASE WHEN o.last_ok_at IS NULL THEN l.health_warning ELSE 0 END AS warned
    FROM locked l JOIN outcome o ON o.endpoint_id = l.id
), judged AS (
    SELECT run.*,
           CASE WHEN since IS NULL THEN 0
                WHEN now() - since >= period_i THEN 100
                WHEN now() - since >= period_i * 0.9 THEN 90
                WHEN now() - since >= period_i * 0.5 THEN 50
                ELSE 0 END AS level,
           last_ok_at IS NOT NULL AND (
               health_warning > 0 OR disabled_at IS NOT NULL
               OR last_ok_at - failing_since >= period_i * 0.5
           ) AS recovered,
           CASE WHEN last_status IS NOT NULL THEN 'HTTP ' || last_status
                ELSE coalesce(last_error, 'no answer') END AS last_answer
    FROM run
), updated AS (
    UPDATE endpoints e SET
        consecutive_failures = j.in_row,
        failing_since = j.since,
        health_warning = greatest(j.warned, j.level),
        disabled_at = CASE WHEN j.level = 100 THEN now()
                           WHEN j.last_ok_at IS NOT NULL THEN NULL
                           ELSE e.disabled_at END,
        status = CASE WHEN j.level = 100 THEN 'disabled' ELSE e.status END,
        status_reason = CASE WHEN j.level = 100 THEN format(
            'failing since %s UTC, %s attempts in a row (the last: %s): disabled after %s '
            'without a success. Set its status to active once it works again.',
            to_char(j.since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), j.in_row,
            j.last_answer, justify_interval(j.period_i))
            ELSE e.status_reason END,
        updated_at = CASE WHEN j.level = 100 THEN now() ELSE e.updated_at END
    FROM judged j
    WHERE e.id = j.id
    RETURNING e.id, e.status_reason
), notices AS (
    INSERT INTO operational_notices (tenant_id, endpoint_id, type, data)
    -- dead letters first: a delivery's last failure comes before the disable it caused.
    -- Only deliveries this batch moved to failed (a result recorded under a lease that is
    -- no longer current moved nothing).
    SELECT d.tenant_id, d.endpoint_id, 'delivery.failed', jsonb_build_object(
               'endpoint_id', e.id, 'url', e.url, 'subscriber', s.uid,
               'delivery_id', d.id, 'event_id', d.event_id, 'event_type', ev.type,
               'attempts', d.attempts, 'last_status', r.status_code, 'last_error', r.error,
               'failing_since', hookline_iso_time(
                   CASE WHEN j.id IS NULL THEN e.failing_since ELSE j.since END),
               'consecutive_failures',
                   CASE WHEN j.id IS NULL THEN e.consecutive_failures ELSE j.in_row END)
    FROM r
    JOIN lanes l ON l.id = r.lane_id AND l.lease_no = r.lease_no
    JOIN deliveries d ON d.id = r.delivery_id AND d.status = 'failed'
    JOIN events ev ON ev.id = d.event_id
    JOIN endpoints e ON e.id = d.endpoint_id
    JOIN subscribers s ON s.id = e.subscriber_id
    JOIN tenants t ON t.id = e.tenant_id
    LEFT JOIN judged j ON j.id = e.id
    WHERE r.status = 'failed' AND t.operational_endpoint_id <> e.id
    UNION ALL
    SELECT j.tenant_id, j.id, n.type,
           jsonb_build_object('endpoint_id', j.id, 'url', j.url, 'subscriber', s.uid) || n.facts
    FROM judged j
    JOIN updated u ON u.id = j.id
    JOIN subscribers s ON s.id = j.subscriber_id
    CROSS JOIN LATERAL (VALUES
        ('endpoint.recovered', j.recovered, jsonb_build_object(
            'failing_since', hookline_iso_time(j.failing_since),
            'disabled_at', hookline_iso_time(j.disabled_at),
            'recovered_at', hookline_iso_time(j.last_ok_at))),
        ('endpoint.failing', j.level IN (50, 90) AND j.level > j.warned, jsonb_build_object(
            'failing_since', hookline_iso_time(j.since),
            'consecutive_failures', j.in_row,
            'last_status', j.last_status, 'last_error', j.last_error,
            'warning', j.level,
            'disable_at', hookline_iso_time(j.since + j.period_i))),
        ('endpoint.disabled', j.level = 100, jsonb_build_object(
            'failing_since', hookline_iso_time(j.since),
            'consecutive_failures', j.in_row,
            'last_status', j.last_status, 'last_error', j.last_error,
            'disabled_at', hookline_iso_time(now()),
            'reason', u.status_reason))
    ) AS n(type, due, facts)
    WHERE n.due AND j.told
    RETURNING 1
)
SELECT count(*) FROM notices;

-- name: take_notices
-- Operational notices to turn into events, oldest first, with where each tenant wants
-- them (NULL: nowhere). Run under publish_lock, whose holder alone publishes.
-- $1 how many at most
SELECT n.id, n.tenant_id, n.endpoint_id, n.type, n.data,
       t.operational_endpoint_id AS operational_endpoint
FROM operational_notices n JOIN tenants t ON t.id = n.tenant_id
ORDER BY n.id
LIMIT $1;

-- name: publish_lock
-- One publisher of notices at a time, so operational events keep the order of their
-- notices (a transaction-level lock, released at commit). True: ours; false: another
-- worker's publisher is at it and takes these notices along.
SELECT pg_try_advisory_xact_lock(hashtext('hookline:notices'));

-- name: drop_notices
-- Forget notices that became events (or that no one wants). $1 notice ids
DELETE FROM operational_notices WHERE id = ANY ($1::bigint[]);
