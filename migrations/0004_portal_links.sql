-- Subscriber portal: magic links that start a subscriber's dashboard session.

-- Only SHA-256 of the token is kept: tokens are 32 random bytes, so a fast hash is enough
-- (as for API keys) and a copy of this table opens no portal. A link starts one session
-- (used_at is set by the redemption that wins) and only until expires_at. Rows of a
-- subscriber that are long expired are purged when it gets its next link.
CREATE TABLE portal_links (
    token_hash     bytea PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    subscriber_id  text NOT NULL REFERENCES subscribers ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);
CREATE INDEX portal_links_subscriber_idx ON portal_links (subscriber_id, expires_at);
