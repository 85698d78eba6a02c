-- 0008: what a recording lost, for the listing.
--
-- Portable. A recording that could not write all its output (a full disk,
-- a write error) ends incomplete; lost_bytes is how much it lost and
-- gap_from_ms / gap_to_ms bound when, in milliseconds since it started, so
-- that `recordings ls` says so next to the state, as the audit trail does.
ALTER TABLE recordings ADD COLUMN lost_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE recordings ADD COLUMN gap_from_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE recordings ADD COLUMN gap_to_ms BIGINT NOT NULL DEFAULT 0;
