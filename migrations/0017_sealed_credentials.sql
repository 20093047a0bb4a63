-- Credentials sealed at rest (hookline/vault.py): a signing secret's text is now sealed, so
-- how it signs can no longer be read off its prefix; it is kept beside it. Sealing the rows
-- stored before needs the key, which SQL does not have: `hookline secrets reencrypt` does
-- it (and `hookline dev` runs it), and until then they are read as they are.
ALTER TABLE endpoint_secrets ADD COLUMN kind text NOT NULL DEFAULT 'hmac'
    CHECK (kind IN ('hmac', 'ed25519'));
UPDATE endpoint_secrets SET kind = 'ed25519' WHERE starts_with(secret, 'whsk_');
ALTER TABLE endpoint_secrets ALTER COLUMN kind DROP DEFAULT;

-- Custom headers the endpoint marks as credentials, besides those whose names say so:
-- their values are sealed, never shown, and redacted in attempt history.
ALTER TABLE endpoints ADD COLUMN sensitive_headers text[] NOT NULL DEFAULT '{}';
