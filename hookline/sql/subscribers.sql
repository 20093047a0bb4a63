-- name: create_subscriber
-- A customer of the tenant, named by the tenant's own uid. $1 tenant_id, $2 uid, $3 name
INSERT INTO subscribers (tenant_id, uid, name) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, uid) DO NOTHING
RETURNING id, uid, name, created_at;

-- name: get_subscriber
-- One subscriber by uid. $1 tenant_id, $2 uid
SELECT id, uid, name, created_at FROM subscribers WHERE tenant_id = $1 AND uid = $2;

-- name: list_subscribers
-- A page of subscribers, newest first. $1 tenant_id, $2 cursor id or NULL, $3 limit
SELECT id, uid, name, created_at FROM subscribers
WHERE tenant_id = $1 AND ($2::text IS NULL OR id < $2)
ORDER BY id DESC LIMIT $3;
