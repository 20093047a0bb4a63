-- name: claim_idempotency_key
-- Take an Idempotency-Key for a request: a row comes back when it is ours to run (new,
-- or taken over: finished more than 24 hours ago, or unfinished for more than $5 seconds,
-- so its request died). No row: another request holds it; look it up.
-- $1 tenant_id, $2 key, $3 route, $4 request hash, $5 seconds an unfinished claim lasts
INSERT INTO idempotency_keys AS k (tenant_id, key, route, request_hash)
VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, key) DO UPDATE
    SET route = excluded.route, request_hash = excluded.request_hash, status = NULL,
        response = NULL, created_at = now()
    WHERE k.created_at < now() - interval '24 hours'
       OR (k.status IS NULL AND k.created_at < now() - make_interval(secs => $5))
RETURNING true;

-- name: get_idempotency_key
-- The stored state of a key. $1 tenant_id, $2 key
SELECT route, request_hash, status, response FROM idempotency_keys
WHERE tenant_id = $1 AND key = $2;

-- name: finish_idempotency_key
-- Keep the response of the request that held the key. $1 tenant_id, $2 key, $3 status,
-- $4 response body
UPDATE idempotency_keys SET status = $3, response = $4 WHERE tenant_id = $1 AND key = $2;

-- name: release_idempotency_key
-- Forget a key whose request failed on our side, so a retry runs again. $1 tenant_id, $2 key
DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND status IS NULL;

-- name: purge_idempotency_keys
-- One batch of keys past their 24 hours (hookline/retention.py). $1 batch size
WITH gone AS (
    DELETE FROM idempotency_keys k
    WHERE (k.tenant_id, k.key) IN (SELECT x.tenant_id, x.key FROM idempotency_keys x
                                   WHERE x.created_at < now() - interval '24 hours'
                                   ORDER BY x.created_at LIMIT $1)
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: count_idempotency_keys
-- Keys past their 24 hours. No parameters.
SELECT count(*) FROM idempotency_keys WHERE created_at < now() - interval '24 hours';
