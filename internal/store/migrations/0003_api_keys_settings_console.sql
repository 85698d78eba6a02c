-- 0003: API keys, gateway settings, local passwords and web console sessions.
--
-- Portable. Times are UTC nanoseconds like the other tables; a NULL
-- expires_at or revoked_at means never / not revoked.

-- API keys: only a hash of the secret is kept (store.APIKey.SecretHash). A
-- revoked key stays listed, so that the audit trail's key ids keep meaning
-- something. source_cidrs is a JSON array of CIDR strings.
CREATE TABLE api_keys (
    id           TEXT   NOT NULL PRIMARY KEY,
    name         TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    owner        TEXT   NOT NULL DEFAULT '',
    created_by   TEXT   NOT NULL DEFAULT '',
    secret_hash  TEXT   NOT NULL,
    source_cidrs TEXT   NOT NULL DEFAULT '[]',
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_owner ON api_keys (owner);

-- Gateway-wide settings changed at run time (portcullis settings set), as
-- text; each setting's owner parses its value.
CREATE TABLE settings (
    name       TEXT   NOT NULL PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Local passwords (web console login), as argon2id PHC strings. Kept
-- apart from the User resource so that applying a User never touches it.
CREATE TABLE user_passwords (
    user_name  TEXT   NOT NULL PRIMARY KEY,
    hash       TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Web console sessions, keyed by the SHA-256 of the cookie value so that
-- a copy of the database does not hand out live sessions. Kept in the
-- database (not in memory) so that gateways sharing it accept each
-- other's sessions and a restart logs nobody out.
CREATE TABLE web_sessions (
    id_hash    TEXT   NOT NULL PRIMARY KEY,
    user_name  TEXT   NOT NULL,
    csrf_token TEXT   NOT NULL,
    source     TEXT   NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_user_name ON web_sessions (user_name);
CREATE INDEX web_sessions_expires_at ON web_sessions (expires_at);
