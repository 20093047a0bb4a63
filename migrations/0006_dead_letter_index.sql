-- Dead letters are few and looked at often (the list, the count in /metrics): a partial
-- index keeps both cheap however many deliveries succeed.
CREATE INDEX deliveries_failed_idx ON deliveries (tenant_id, id DESC) WHERE status = 'failed';
