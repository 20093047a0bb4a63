-- Dashboard sessions: an operator's (after email and password) or a subscriber's (after a
-- portal magic link). Only SHA-256 of the cookie's token is kept, as for API keys, so a
-- copy of this table opens no session. Each session carries its own CSRF token.
CREATE TABLE sessions (
    token_hash     bytea PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    user_id        text REFERENCES users ON DELETE CASCADE,
    subscriber_id  text REFERENCES subscribers ON DELETE CASCADE,
    csrf_token     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    -- exactly one audience: an operator of the tenant, or one of its subscribers
    CHECK ((user_id IS NULL) <> (subscriber_id IS NULL))
);
CREATE INDEX sessions_expiry_idx ON sessions (expires_at);
