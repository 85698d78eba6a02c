-- 0007: how far each recording's search index is.
--
-- Portable. index_state is live (the session runs, text is indexed within
-- the live budget), partial (an ended recording whose index misses text:
-- the gateway that has its file indexes it again from the file), complete
-- or failed (its file could not be read). Rows written before this version
-- were indexed within the budget only: they start partial, and are indexed
-- from their files in the background. index_offset is how far into the
-- file that catch-up has indexed (0: not started), so that a restart
-- resumes there.
ALTER TABLE recordings ADD COLUMN index_state TEXT NOT NULL DEFAULT 'partial';
ALTER TABLE recordings ADD COLUMN index_offset BIGINT NOT NULL DEFAULT 0;
-- The catch-up looks for one gateway's recordings still to index.
CREATE INDEX recordings_gateway_index ON recordings (gateway, index_state);
