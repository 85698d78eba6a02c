-- 0013: targets that dial out (the agent) and the limits of registration
-- keys.
--
-- Portable. A registration key may be scoped to one environment (the
-- targets it registers carry that environment), limited to a number of
-- uses, and to target names matching a glob; uses counts registrations
-- made with it, incremented in the same statement that checks the limit,
-- so that two agents racing for the last use cannot both get it.
ALTER TABLE api_keys ADD COLUMN environment TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN max_uses BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN uses BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN name_pattern TEXT NOT NULL DEFAULT '';

-- One row per agent target: the agent's identity (its Ed25519 public key,
-- what it authenticates to the gateway with), how it serves sessions, and
-- its connection as the gateways see it. gateway is the id of the gateway
-- holding its connection ('' when none); connected_at is null while it is
-- not connected. Gateways sharing a database read each other's rows for
-- `get targets`.
CREATE TABLE agents (
    target        TEXT   NOT NULL PRIMARY KEY,
    public_key    TEXT   NOT NULL,
    mode          TEXT   NOT NULL DEFAULT '',
    version       TEXT   NOT NULL DEFAULT '',
    gateway       TEXT   NOT NULL DEFAULT '',
    key_id        TEXT   NOT NULL DEFAULT '',
    registered_at BIGINT NOT NULL,
    connected_at  BIGINT,
    last_seen     BIGINT
);
