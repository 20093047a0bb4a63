-- name: user_for_login
-- An operator by email, with what a login needs. $1 email (lower case)
SELECT u.id, u.tenant_id, u.password_hash FROM users u WHERE u.email = $1;

-- name: create_session
-- A new session (expired ones are refused by get_session and removed by the purge,
-- hookline/retention.py). $1 token hash, $2 tenant id, $3 user id or NULL, $4 subscriber id
-- or NULL, $5 CSRF token, $6 lifetime (s)
INSERT INTO sessions (token_hash, tenant_id, user_id, subscriber_id, csrf_token, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6));

-- name: load_session
-- A live session with the names the pages show. $1 token hash
SELECT s.tenant_id, t.name AS tenant_name, s.user_id, u.email,
       s.subscriber_id, sb.uid AS subscriber_uid, sb.name AS subscriber_name,
       s.csrf_token, s.expires_at
FROM sessions s
JOIN tenants t ON t.id = s.tenant_id
LEFT JOIN users u ON u.id = s.user_id
LEFT JOIN subscribers sb ON sb.id = s.subscriber_id
WHERE s.token_hash = $1 AND s.expires_at > now();

-- name: delete_session
-- Sign out. $1 token hash
DELETE FROM sessions WHERE token_hash = $1;
