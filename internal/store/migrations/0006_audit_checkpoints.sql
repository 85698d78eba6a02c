-- 0006: signed checkpoints of the audit trail, and the key that signs them.
--
-- Portable. A hash chain alone cannot show that its newest events were
-- removed, nor tell retention from the removal of its oldest: every so
-- often, and at shutdown, the gateway signs the chain's head (kind
-- 'head'), and retention signs where it cut (kind 'retention'), with one
-- Ed25519 key shared by every gateway on the store. See store.AuditCheckpoint.
CREATE TABLE audit_checkpoints (
    id        {{identity}},
    kind      TEXT   NOT NULL,
    event_id  BIGINT NOT NULL,
    hash      TEXT   NOT NULL,
    time      BIGINT NOT NULL,
    gateway   TEXT   NOT NULL DEFAULT '',
    signature TEXT   NOT NULL
);
-- LatestCheckpoint: the largest event_id of a kind.
CREATE INDEX audit_checkpoints_kind_event ON audit_checkpoints (kind, event_id, id);

-- The audit key: one row, its private half sealed under the master key.
CREATE TABLE audit_key (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    public_key  TEXT    NOT NULL,
    sealed      {{bytes}} NOT NULL,
    created_at  BIGINT  NOT NULL
);
