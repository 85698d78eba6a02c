-- 0002, PostgreSQL only: the full-text index of recording_text.
--
-- A generated tsvector column with a GIN index. The 'simple' configuration
-- lower-cases and does not stem, like SQLite's unicode61 tokenizer (it
-- does not remove diacritics; the unaccent extension would). The backend
-- searches it with a tsquery built from store.ParseSearch's terms (each
-- term through phraseto_tsquery('simple', ...), joined with &&), ranks
-- with ts_rank_cd and cuts snippets with ts_headline (StartSel=«,
-- StopSel=»).
ALTER TABLE recording_text
    ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED;
CREATE INDEX recording_text_tsv ON recording_text USING GIN (tsv);
