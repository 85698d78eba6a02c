-- 0002: the audit hash chain, session recordings, their search text and the
-- command history.
--
-- Portable, like 0001. Full-text search is not: SQLite indexes
-- recording_text with an FTS5 table (0002_...sqlite.sql), PostgreSQL with a
-- tsvector column and a GIN index (0002_...postgres.sql). Both run right
-- after this file, in the same transaction.

-- Every event carries the hash of the one before it (store.HashEvent). The
-- store fills both columns inside the transaction that appends. Events that
-- existed before this version are chained by this version's Go step
-- (chainAudit in chain.go), so that verification covers them too.
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN hash      TEXT NOT NULL DEFAULT '';

-- The metadata of session recordings; the asciicast files live in the
-- recordings directory, named by id. ended_at is NULL while active.
CREATE TABLE recordings (
    id         TEXT   NOT NULL PRIMARY KEY,
    user_name  TEXT   NOT NULL DEFAULT '',
    target     TEXT   NOT NULL DEFAULT '',
    account    TEXT   NOT NULL DEFAULT '',
    source     TEXT   NOT NULL DEFAULT '',
    action     TEXT   NOT NULL DEFAULT '',
    command    TEXT   NOT NULL DEFAULT '',
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    state      TEXT   NOT NULL,
    size       BIGINT NOT NULL DEFAULT 0,
    sha256     TEXT   NOT NULL DEFAULT ''
);
-- Listings are newest first, optionally by user or target; the gateway
-- looks for active recordings when it starts.
CREATE INDEX recordings_started_at ON recordings (started_at);
CREATE INDEX recordings_user_name ON recordings (user_name, started_at);
CREATE INDEX recordings_target ON recordings (target, started_at);
CREATE INDEX recordings_state ON recordings (state, started_at);

-- Text that appeared in (or was typed into) a recording, in chunks that
-- start offset_seconds into it: what keyword search looks in. This table
-- holds the text once; the full-text index of each dialect refers to it by
-- id. (Not "offset": a keyword in both databases.)
CREATE TABLE recording_text (
    id             {{identity}},
    recording_id   TEXT             NOT NULL REFERENCES recordings (id),
    offset_seconds DOUBLE PRECISION NOT NULL,
    text           TEXT             NOT NULL
);
CREATE INDEX recording_text_recording_id ON recording_text (recording_id);
-- Search maps every matching chunk to its recording and offset: this
-- covering index answers that without reading the rows, which hold
-- kilobytes of text each (on SQLite it made a search matching 33,000
-- chunks five times faster).
CREATE INDEX recording_text_chunk ON recording_text (id, recording_id, offset_seconds);

-- Every command a subject ran: exec requests exactly, interactive lines as
-- reconstructed. exit_status is NULL until known (and for interactive
-- lines). Listings are in id order, optionally by user, target or session.
CREATE TABLE commands (
    id          {{identity}},
    time        BIGINT  NOT NULL,
    user_name   TEXT    NOT NULL DEFAULT '',
    target      TEXT    NOT NULL DEFAULT '',
    account     TEXT    NOT NULL DEFAULT '',
    session_id  TEXT    NOT NULL DEFAULT '',
    source      TEXT    NOT NULL DEFAULT '',
    command     TEXT    NOT NULL,
    interactive BOOLEAN NOT NULL DEFAULT FALSE,
    certain     BOOLEAN NOT NULL DEFAULT TRUE,
    exit_status INTEGER
);
CREATE INDEX commands_time ON commands (time);
CREATE INDEX commands_user_name ON commands (user_name, id);
CREATE INDEX commands_target ON commands (target, id);
CREATE INDEX commands_session_id ON commands (session_id, id);
