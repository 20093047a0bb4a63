-- name: create_portal_link
-- A magic link of a subscriber, stored as the token's hash; the subscriber's links that
-- expired longer ago than they are kept are purged on the way. No row: no such subscriber.
-- $1 tenant_id, $2 subscriber uid, $3 token hash, $4 lifetime (s), $5 how long an expired
-- link is kept (s)
WITH sub AS (
    SELECT id FROM subscribers WHERE tenant_id = $1 AND uid = $2
), purged AS (
    DELETE FROM portal_links p USING sub
    WHERE p.subscriber_id = sub.id AND p.expires_at < now() - make_interval(secs => $5)
)
INSERT INTO portal_links (token_hash, tenant_id, subscriber_id, expires_at)
SELECT $3, $1, sub.id, now() + make_interval(secs => $4) FROM sub
RETURNING expires_at;

-- name: redeem_portal_link
-- Use a magic link: only the first redemption before expiry gets a row (the row lock makes
-- concurrent ones wait and then find it used). $1 token hash
UPDATE portal_links SET used_at = now()
WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
RETURNING tenant_id, subscriber_id;

-- name: get_portal_link
-- A magic link's state, to say why it cannot be used. $1 token hash
SELECT used_at, expires_at FROM portal_links WHERE token_hash = $1;
