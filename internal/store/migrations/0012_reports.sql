-- 0012: compliance reports: session reviews, access review campaigns and
-- report schedules.
--
-- Portable. Times are UTC nanoseconds; 0 means not yet (decided, closed,
-- run).

-- Session reviews: an auditor's verdict on a recording, appended, never
-- updated, so that a changed verdict keeps the first one; the latest per
-- recording counts.
CREATE TABLE session_reviews (
    id           {{identity}},
    recording_id TEXT   NOT NULL,
    reviewer     TEXT   NOT NULL,
    decision     TEXT   NOT NULL,
    comment      TEXT   NOT NULL DEFAULT '',
    time         BIGINT NOT NULL
);
CREATE INDEX session_reviews_recording ON session_reviews (recording_id, id);

-- Access review campaigns and their items: one item per entitlement as the
-- campaign started (a copy, so that later policy changes leave what was
-- reviewed readable).
CREATE TABLE review_campaigns (
    id         {{identity}},
    name       TEXT   NOT NULL,
    started_by TEXT   NOT NULL,
    started_at BIGINT NOT NULL,
    closed_by  TEXT   NOT NULL DEFAULT '',
    closed_at  BIGINT NOT NULL DEFAULT 0,
    sign_off   TEXT   NOT NULL DEFAULT ''
);
CREATE TABLE review_items (
    campaign_id   BIGINT NOT NULL REFERENCES review_campaigns (id),
    item          BIGINT NOT NULL,
    identity      TEXT   NOT NULL,
    identity_kind TEXT   NOT NULL,
    via           TEXT   NOT NULL,
    policy        TEXT   NOT NULL,
    jit_policy    TEXT   NOT NULL DEFAULT '',
    target        TEXT   NOT NULL,
    target_user   TEXT   NOT NULL,
    privileged    TEXT   NOT NULL DEFAULT '',
    granted_by    TEXT   NOT NULL DEFAULT '',
    decision      TEXT   NOT NULL DEFAULT '',
    reviewer      TEXT   NOT NULL DEFAULT '',
    comment       TEXT   NOT NULL DEFAULT '',
    effect        TEXT   NOT NULL DEFAULT '',
    decided_at    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, item)
);

-- Report schedules: a report written every so often to a directory or
-- posted to a webhook.
CREATE TABLE report_schedules (
    id         {{identity}},
    kind       TEXT   NOT NULL,
    every_ns   BIGINT NOT NULL,
    dest       TEXT   NOT NULL,
    formats    TEXT   NOT NULL,
    created_by TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    last_run   BIGINT NOT NULL DEFAULT 0
);
