-- name: create_tenant
-- A new tenant. $1 name
INSERT INTO tenants (name) VALUES ($1) RETURNING id, name, created_at;

-- name: create_api_key
-- Store the hash of a new API key. $1 tenant_id, $2 sha256 of the key, $3 display prefix
INSERT INTO api_keys (tenant_id, key_hash, prefix) VALUES ($1, $2, $3) RETURNING id;

-- name: tenant_for_key
-- The tenant an unrevoked API key belongs to. $1 sha256 of the key
SELECT t.id, t.name
FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL;

-- name: get_tenant
-- One tenant. $1 tenant_id
SELECT id, name, created_at FROM tenants WHERE id = $1;

-- name: create_user
-- An operator login. $1 tenant_id, $2 email (lower case), $3 argon2 hash
INSERT INTO users (tenant_id, email, password_hash) VALUES ($1, $2, $3)
RETURNING id, tenant_id, email, created_at;

-- name: get_tenant_settings
-- A tenant's own settings. $1 tenant_id
SELECT unknown_event_types, retry_schedule, delivery_timeout, disable_after,
       operational_endpoint_id AS operational_endpoint, retention
FROM tenants WHERE id = $1;

-- name: update_tenant_settings
-- Change the named settings of a tenant and leave the others. An operational endpoint
-- must be one of the tenant's own (the caller checks with endpoint_exists; the foreign
-- key catches a delete in between). $1 tenant_id, $2 names of the settings to change,
-- $3 unknown_event_types, $4 retry_schedule, $5 delivery_timeout, $6 disable_after,
-- $7 operational_endpoint (an endpoint id), $8 retention (s)
UPDATE tenants SET
    unknown_event_types = CASE WHEN 'unknown_event_types' = ANY ($2) THEN $3::text
                               ELSE unknown_event_types END,
    retry_schedule = CASE WHEN 'retry_schedule' = ANY ($2) THEN $4::float8[]
                          ELSE retry_schedule END,
    delivery_timeout = CASE WHEN 'delivery_timeout' = ANY ($2) THEN $5::real
                            ELSE delivery_timeout END,
    disable_after = CASE WHEN 'disable_after' = ANY ($2) THEN $6::float8
                         ELSE disable_after END,
    operational_endpoint_id = CASE WHEN 'operational_endpoint' = ANY ($2) THEN $7::text
                                   ELSE operational_endpoint_id END,
    retention = CASE WHEN 'retention' = ANY ($2) THEN $8::integer ELSE retention END
WHERE id = $1
RETURNING unknown_event_types, retry_schedule, delivery_timeout, disable_after,
          operational_endpoint_id AS operational_endpoint, retention;
