-- 0011: just-in-time access requests and their history.
--
-- Portable. Times are UTC nanoseconds like the other tables. Rows here are
-- never deleted when a request expires: the history of who asked, who
-- approved and when access ended outlives the grant (unlike Teleport,
-- whose expired requests vanish, gravitational/teleport#68308).

-- One row per request. state moves pending -> approved | denied |
-- expired | cancelled, approved -> expired | revoked; the UPDATE that
-- moves it names the state it moves from, so that two approvers racing
-- (or two gateways expiring) cannot both win. grant is the JIT-xxxxxxxx
-- policy created on approval, kept after it is deleted.
CREATE TABLE jit_requests (
    id          TEXT   NOT NULL PRIMARY KEY,
    requester   TEXT   NOT NULL,
    policy      TEXT   NOT NULL,
    target      TEXT   NOT NULL,
    account     TEXT   NOT NULL,
    duration_ns BIGINT NOT NULL,
    reason      TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    approval    TEXT   NOT NULL,
    grant_name  TEXT   NOT NULL,
    decided_by  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    decided_at  BIGINT,
    expires_at  BIGINT
);
CREATE INDEX jit_requests_state ON jit_requests (state, created_at);
CREATE INDEX jit_requests_requester ON jit_requests (requester, created_at);

-- The history of each request, in order: requested, approved, denied,
-- granted, used, expired, revoked, notified... with the channel it came
-- through (cli, api, console, slack, webhook, policy, ssh).
CREATE TABLE jit_events (
    id         {{identity}},
    request_id TEXT   NOT NULL,
    time       BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    channel    TEXT   NOT NULL,
    detail     TEXT   NOT NULL
);
CREATE INDEX jit_events_request ON jit_events (request_id, id);

-- Single-use approve and deny links sent by the generic webhook, as hex
-- SHA-256 of the random token (256 bits: a plain hash suffices). The
-- UPDATE that sets used_at is the one-time check.
CREATE TABLE jit_links (
    token_hash TEXT   NOT NULL PRIMARY KEY,
    request_id TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
