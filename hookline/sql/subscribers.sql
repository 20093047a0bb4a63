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

-- name: update_subscriber
-- Change the named fields of a subscriber and leave the others. No row: no such subscriber.
-- $1 tenant_id, $2 uid, $3 names of the fields to change, $4 new uid, $5 name
UPDATE subscribers
SET uid = CASE WHEN 'uid' = ANY ($3) THEN $4::text ELSE uid END,
    name = CASE WHEN 'name' = ANY ($3) THEN $5::text ELSE name END
WHERE tenant_id = $1 AND uid = $2
RETURNING id, uid, name, created_at;

-- name: lock_subscriber
-- Lock a subscriber about to be deleted (new endpoints of it wait for the outcome).
-- $1 tenant_id, $2 subscriber id
SELECT id FROM subscribers WHERE tenant_id = $1 AND id = $2 FOR UPDATE;

-- name: delete_subscriber
-- Delete a subscriber with its endpoints (stopped first) and their deliveries (cascades);
-- its events stay, no longer naming it. $1 tenant_id, $2 subscriber id
DELETE FROM subscribers WHERE tenant_id = $1 AND id = $2;
