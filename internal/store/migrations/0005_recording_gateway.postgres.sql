-- 0005, PostgreSQL only: the full-text index splits words as SQLite's does.
--
-- 0002 indexed to_tsvector('simple', text), whose parser keeps a path, a
-- host name, an e-mail address or a version number as one token: a search
-- for nginx did not find "vi /etc/nginx/nginx.conf", where SQLite's
-- unicode61 tokenizer (which splits on everything but letters and digits)
-- finds it. Replacing every run of other characters by a space before
-- parsing leaves the parser only words and numbers, one token each, so
-- both backends split text alike. The backend puts search terms through
-- the same replacement (postgres/search.go), so that nginx.conf is the
-- phrase "nginx conf" there too.
--
-- regexp_replace and to_tsvector(regconfig, text) are immutable, as a
-- generated column requires. [[:alnum:]] follows the database's ctype,
-- which must be a UTF-8 one (the backend refuses the C locale), so that
-- letters outside ASCII count as letters. Recomputing the column rewrites
-- the table once, inside this migration's transaction.
DROP INDEX recording_text_tsv;
ALTER TABLE recording_text DROP COLUMN tsv;
ALTER TABLE recording_text
    ADD COLUMN tsv tsvector GENERATED ALWAYS AS
        (to_tsvector('simple', regexp_replace(text, '[^[:alnum:]]+', ' ', 'g'))) STORED;
CREATE INDEX recording_text_tsv ON recording_text USING GIN (tsv);
