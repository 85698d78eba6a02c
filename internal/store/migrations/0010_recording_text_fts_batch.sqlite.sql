-- 0010, SQLite only: see 0010_recording_text_fts_batch.sql. Rows are added
-- to recording_text_fts by IndexText, one statement per transaction; the
-- delete and update triggers stay (they hand FTS5 the old text).
DROP TRIGGER recording_text_fts_insert;
