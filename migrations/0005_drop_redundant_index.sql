-- deliveries (event_id) is already served by UNIQUE (event_id, endpoint_id), whose index
-- leads with event_id; the second index only cost every ingest a write.
DROP INDEX IF EXISTS deliveries_event_idx;
