-- 0001: the initial schema.
--
-- Written once for SQLite and PostgreSQL. {{identity}} and {{bytes}} are the
-- only words the two disagree on; package migrations replaces them per
-- dialect. Times are BIGINT Unix nanoseconds in UTC: both databases store
-- and compare a 64-bit integer identically, where their timestamp types
-- differ in precision (PostgreSQL keeps microseconds) and time zone handling.

-- Resources are stored opaquely: a JSON spec as TEXT (not jsonb) so that
-- both backends return the bytes exactly as written, and the sealed secret
-- apart from it so that listings never need to read secrets.
CREATE TABLE resources (
    kind       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    spec       TEXT    NOT NULL,
    secret     {{bytes}},
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (kind, name)
);

-- One row, bumped by every Apply: gateways sharing a database poll it to
-- learn that something changed without re-reading every resource.
CREATE TABLE revision (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    value BIGINT  NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);

-- The audit trail only grows (retention deletes the oldest rows), and
-- readers page and tail it by id, so ids must never be reused: hence
-- AUTOINCREMENT on SQLite, whose plain rowid may reuse the largest id after
-- a delete.
CREATE TABLE audit_events (
    id         {{identity}},
    time       BIGINT NOT NULL,
    type       TEXT   NOT NULL,
    outcome    TEXT   NOT NULL DEFAULT '',
    user_name  TEXT   NOT NULL DEFAULT '',
    source     TEXT   NOT NULL DEFAULT '',
    target     TEXT   NOT NULL DEFAULT '',
    account    TEXT   NOT NULL DEFAULT '',
    session_id TEXT   NOT NULL DEFAULT '',
    policy     TEXT   NOT NULL DEFAULT '',
    message    TEXT   NOT NULL DEFAULT '',
    detail     TEXT
);
CREATE INDEX audit_events_time ON audit_events (time);
CREATE INDEX audit_events_session_id ON audit_events (session_id);

-- Target host keys learned on first use; the primary key is what turns a
-- second, racing first use into a conflict.
CREATE TABLE host_keys (
    target     TEXT   NOT NULL PRIMARY KEY,
    key        TEXT   NOT NULL,
    first_seen BIGINT NOT NULL
);
