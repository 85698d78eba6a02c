-- 0009: when the lines of each indexed chunk appeared.
--
-- Portable. A chunk holds up to a screenful of lines; offset_seconds is its
-- first line's time. times lists when later lines appeared, where that
-- differs ("DL:DMS,...", see store.EncodeLineTimes), so that a search hit
-- is reported at the line that holds the match. Empty for a chunk whose
-- lines all appeared at once, and for chunks indexed before this version
-- (their hits keep the chunk's start).
ALTER TABLE recording_text ADD COLUMN times TEXT NOT NULL DEFAULT '';
