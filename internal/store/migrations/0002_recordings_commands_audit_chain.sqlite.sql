-- 0002, SQLite only: the full-text index of recording_text.
--
-- An FTS5 table with external content: it keeps only the index and reads
-- the text (for snippet()) from recording_text by rowid, so the text is
-- stored once. Triggers keep it in step with recording_text; deleting
-- rows hands FTS5 the old text it needs to remove their tokens.
--
-- unicode61 splits on everything but letters, digits and private-use
-- characters and folds case; remove_diacritics 2 makes "resume" find
-- "résumé". No stemming: shell output is mostly names, not prose. The
-- default detail=full keeps token positions, which phrases and snippet()
-- need. Ranking is bm25().
CREATE VIRTUAL TABLE recording_text_fts USING fts5(
    text,
    content = 'recording_text',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER recording_text_fts_insert AFTER INSERT ON recording_text BEGIN
    INSERT INTO recording_text_fts (rowid, text) VALUES (new.id, new.text);
END;

CREATE TRIGGER recording_text_fts_delete AFTER DELETE ON recording_text BEGIN
    INSERT INTO recording_text_fts (recording_text_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;

CREATE TRIGGER recording_text_fts_update AFTER UPDATE ON recording_text BEGIN
    INSERT INTO recording_text_fts (recording_text_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO recording_text_fts (rowid, text) VALUES (new.id, new.text);
END;
