-- Group commit: one ingest statement writes the events of many requests, each request
-- on its own (a request that names an unknown subscriber or exceeds the fan-out quota is
-- left out, an event whose producer id is taken is skipped by ON CONFLICT). A request of
-- several events (a batch) stays all or nothing: when some of its events were written and
-- some skipped as taken, the statement raises this unique_violation and writes nothing.
CREATE FUNCTION hookline_batch_taken() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RAISE unique_violation USING MESSAGE = 'a producer event id of the batch is taken';
END
$$;
