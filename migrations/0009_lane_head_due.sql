-- When a lane's head is due: the one definition of "head" (lowest sequence among the
-- unfinished deliveries) that releasing and rescheduling lanes both use.
CREATE FUNCTION hookline_head_due(lane bigint) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT d.next_attempt_at FROM deliveries d
    WHERE d.lane_id = lane AND d.status IN ('pending', 'retrying')
    ORDER BY d.seq LIMIT 1
$$;
