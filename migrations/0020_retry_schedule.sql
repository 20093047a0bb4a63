-- The retry schedule a delivery follows, resolved in one place: its endpoint's own, else
-- its tenant's, else the installation's (HOOKLINE_RETRY_SCHEDULE, which the caller passes).
-- The worker sends by it; a manual retry and a replay give a delivery its length in used
-- retries, so that one failure ends it.
CREATE FUNCTION hookline_retry_schedule(endpoint_schedule float8[], tenant_schedule float8[],
                                        installation float8[]) RETURNS float8[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(endpoint_schedule, tenant_schedule, installation)
$$;
