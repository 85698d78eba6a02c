-- 0006, PostgreSQL only: audit event IDs without holes.
--
-- AppendAudit used to draw IDs from the identity sequence, which a
-- transaction that failed after drawing left with a hole: indistinguishable
-- from a removed event, now that verification refuses any gap in the IDs.
-- IDs now come from this counter, advanced under the audit lock in the
-- appending transaction, so a rollback gives the number back; and it only
-- grows, so an ID is never handed out again after the newest events are
-- removed (as SQLite's AUTOINCREMENT behaves).
CREATE TABLE audit_id_counter (last BIGINT NOT NULL);
INSERT INTO audit_id_counter (last) SELECT COALESCE(MAX(id), 0) FROM audit_events;
