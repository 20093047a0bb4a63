-- Delivery policy a tenant sets for all its endpoints (an endpoint's own wins; NULL
-- follows the installation's settings).
ALTER TABLE tenants
    ADD COLUMN retry_schedule double precision[] CHECK (cardinality(retry_schedule) <= 50),
    ADD COLUMN delivery_timeout real CHECK (delivery_timeout > 0 AND delivery_timeout <= 30);
