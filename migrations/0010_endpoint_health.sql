-- Endpoint health: hookline counts an endpoint's failures in a row, warns as a failing run
-- goes on, disables the endpoint once it has failed for the disable period, and tells the
-- tenant through operational events sent to an endpoint the tenant names.
--   consecutive_failures  failed attempts since the last success
--   failing_since         when the first failure of the current run was sent (NULL: healthy)
--   health_warning        the highest warning sent for this run, in percent of the disable
--                         period (50, 90); 0: none yet
--   disabled_at           when hookline last disabled it; kept after a re-enable until the
--                         first success, which then reports the recovery
--   disable_after         the endpoint's own disable period, seconds (NULL: its tenant's)
ALTER TABLE endpoints
    ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN failing_since timestamptz,
    ADD COLUMN health_warning smallint NOT NULL DEFAULT 0,
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN disable_after double precision CHECK (disable_after > 0);

-- endpoints disabled before this migration: the last change is the best guess of when
UPDATE endpoints SET disabled_at = updated_at WHERE status = 'disabled';

-- A tenant's disable period for endpoints that set none (NULL: the installation's
-- HOOKLINE_ENDPOINT_DISABLE_AFTER), and the endpoint its operational events go to.
ALTER TABLE tenants
    ADD COLUMN disable_after double precision CHECK (disable_after > 0),
    ADD COLUMN operational_endpoint_id text REFERENCES endpoints ON DELETE SET NULL;
CREATE INDEX tenants_operational_endpoint_idx ON tenants (operational_endpoint_id)
    WHERE operational_endpoint_id IS NOT NULL;

-- The outbox of operational events: written in the transaction that records the attempt
-- results behind them (so none is lost and none is sent for a result that did not commit),
-- then turned into events for the tenant's operational endpoint and deleted.
-- endpoint_id is the endpoint the notice is about (no foreign key: a notice outlives it).
CREATE TABLE operational_notices (
    id           bigserial PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    endpoint_id  text NOT NULL,
    type         text NOT NULL,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- A moment as operational events write it: ISO 8601 in UTC with milliseconds and a Z,
-- as delivery bodies write their timestamps (whatever the session's time zone).
CREATE FUNCTION hookline_iso_time(moment timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
