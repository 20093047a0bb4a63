-- Replays: re-sending deliveries in bulk by filter (and, for one endpoint, the events it
-- never got), run by workers as rate-limited jobs that can be paused and cancelled.

CREATE TABLE replays (
    id           text PRIMARY KEY DEFAULT hookline_id('rpl'),
    tenant_id    text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    -- NULL: every endpoint of the tenant. A replay of a deleted endpoint goes with it
    -- (SET NULL would widen it to every endpoint).
    endpoint_id  text REFERENCES endpoints ON DELETE CASCADE,
    -- the filter, as asked for
    event_types  text[],                      -- NULL: every type
    statuses     text[] NOT NULL
                 CHECK (statuses <@ ARRAY['failed', 'cancelled', 'succeeded']),
    since        timestamptz,                 -- events ingested at or after
    until        timestamptz,                 -- events ingested before; the job stops at
                                              -- created_at whatever it says
    missed       boolean NOT NULL DEFAULT false,  -- also events the endpoint never got
    rate         integer NOT NULL CHECK (rate > 0),   -- deliveries queued per second
    state        text NOT NULL DEFAULT 'running'
                 CHECK (state IN ('running', 'paused', 'cancelled', 'done')),
    total        bigint NOT NULL,             -- counted when created
    queued       bigint NOT NULL DEFAULT 0,   -- queued so far
    -- where the job is: re-queueing existing deliveries, then creating missed ones; after_id
    -- is the last delivery (or event) id handled in that stage. It moves in the same
    -- transaction as the deliveries it queued, so a crash neither repeats nor skips any.
    stage        text NOT NULL DEFAULT 'deliveries' CHECK (stage IN ('deliveries', 'missed')),
    after_id     text,
    -- set while a worker runs the job; a dead worker's lease runs out and another takes it
    lease_until  timestamptz,
    lease_no     bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    CHECK (NOT missed OR (endpoint_id IS NOT NULL AND since IS NOT NULL)),
    CHECK (since < until)
);
CREATE INDEX replays_tenant_idx ON replays (tenant_id, id DESC);
CREATE INDEX replays_running_idx ON replays (lease_until) WHERE state = 'running';

-- The lowest id a row made at or after `at` can have: an id starts with the milliseconds of
-- the clock when it was made, never before the transaction's now() that stamps the row's
-- created_at (a minute of slack for a clock stepped back). Lets a time range start an index
-- scan on ids instead of reading the tenant's whole history. NULL when `at` is. (IMMUTABLE:
-- the epoch of a timestamptz does not depend on the session's time zone.)
CREATE FUNCTION hookline_id_floor(prefix text, at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT prefix || '_' || lpad(to_hex(greatest(
        0, (extract(epoch FROM at) * 1000)::bigint - 60000)), 12, '0')
$$;

-- The deliveries a replay re-queues, in id order: the tenant's (the endpoint's when given),
-- in one of the statuses, of events of one of the types (NULL: any) ingested in
-- [since, until), never of a cancelled or expired event; after `after`, at most `lim`
-- (NULL: all). The dry-run count and the job both read this, so they cannot disagree.
CREATE FUNCTION hookline_replay_deliveries(
    p_tenant text, p_endpoint text, p_statuses text[], p_types text[],
    p_since timestamptz, p_until timestamptz, p_after text, p_lim bigint)
RETURNS TABLE (id text, lane_id bigint)
LANGUAGE sql STABLE AS $$
    SELECT d.id, d.lane_id
    FROM deliveries d JOIN events ev ON ev.id = d.event_id
    WHERE d.tenant_id = p_tenant
      AND (p_endpoint IS NULL OR d.endpoint_id = p_endpoint)
      AND d.status = ANY (p_statuses)
      AND d.id > coalesce(greatest(p_after, hookline_id_floor('dlv', p_since)), '')
      AND (p_types IS NULL OR ev.type = ANY (p_types))
      AND (p_since IS NULL OR ev.created_at >= p_since) AND ev.created_at < p_until
      AND ev.cancelled_at IS NULL AND (ev.expires_at IS NULL OR ev.expires_at > now())
    ORDER BY d.id
    LIMIT p_lim
$$;

-- The events an endpoint never got a delivery of, in id order (ingest order to the
-- millisecond): of the tenant, ingested in [since, until), of one of the types (NULL: any),
-- neither cancelled nor expired, and wanted by the endpoint under the rules ingest fans out
-- by (its event types, its subscriber or a broadcast, its pinned schema version; see
-- ingest_events in hookline/sql/events.sql). After `after`, at most `lim` (NULL: all).
CREATE FUNCTION hookline_replay_missed(
    p_tenant text, p_endpoint text, p_types text[],
    p_since timestamptz, p_until timestamptz, p_after text, p_lim bigint)
RETURNS TABLE (event_id text, subject text, ordering_key text)
LANGUAGE sql STABLE AS $$
    SELECT ev.id, ev.subject, ev.ordering_key
    FROM endpoints e JOIN events ev ON ev.tenant_id = e.tenant_id
    WHERE e.tenant_id = p_tenant AND e.id = p_endpoint
      AND ev.id > coalesce(greatest(p_after, hookline_id_floor('evt', p_since)), '')
      AND ev.created_at >= p_since AND ev.created_at < p_until
      AND ev.cancelled_at IS NULL AND (ev.expires_at IS NULL OR ev.expires_at > now())
      AND (p_types IS NULL OR ev.type = ANY (p_types))
      AND (e.event_types IS NULL OR ev.type = ANY (e.event_types))
      AND (ev.subscriber_id IS NULL OR ev.subscriber_id = e.subscriber_id)
      AND (e.schema_version IS NULL OR e.schema_version = ev.schema_version)
      AND NOT EXISTS (SELECT 1 FROM deliveries d
                      WHERE d.event_id = ev.id AND d.endpoint_id = e.id)
    ORDER BY ev.id
    LIMIT p_lim
$$;
