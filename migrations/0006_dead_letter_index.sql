-- Dead letters are few and looked at often (the list, the count in /metrics): a partial
-- index keeps both cheap however many deliveries succeed.
-- outside the transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_failed_idx ON deliveries (tenant_id, id DESC)
    WHERE status = 'failed';
