-- 0007, SQLite only: FTS5 merges index segments eight at a time instead of
-- four. Bulk indexing (the catch-up from recording files) spent 40% of its
-- CPU merging; measured with BenchmarkCatchUp (issue 12): 4.9 -> 6.8 MB of
-- shell output per CPU second, searches still well under 50 ms p50.
INSERT INTO recording_text_fts (recording_text_fts, rank) VALUES ('automerge', 8);
