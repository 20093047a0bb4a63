-- name: quota_lock
-- Lock the tenant's row for a count quota, until the creating transaction ends (inserts
-- that reference the tenant take key-share locks, which this does not block). The count
-- must come in a statement after this one: a statement's snapshot is taken when it
-- starts, before it waits for the lock, and would miss what the previous holder wrote.
-- $1 tenant_id
SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE;

-- name: quota_endpoints
-- How many endpoints the tenant has. $1 tenant_id
SELECT count(*) FROM endpoints WHERE tenant_id = $1;

-- name: quota_subscribers
-- How many subscribers the tenant has. $1 tenant_id
SELECT count(*) FROM subscribers WHERE tenant_id = $1;

-- name: quota_event_types
-- How many event types the tenant has. $1 tenant_id
SELECT count(*) FROM event_types WHERE tenant_id = $1;

-- name: quota_replays
-- How many replays of the tenant are running or paused (a paused one may be resumed at
-- any time). $1 tenant_id
SELECT count(*) FROM replays WHERE tenant_id = $1 AND state IN ('running', 'paused');
