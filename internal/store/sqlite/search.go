package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/portcullis/portcullis/internal/store"
)

// defaultSearchLimit is the number of hits SearchText returns when its
// limit is zero or less.
const defaultSearchLimit = 100

// IndexText adds chunks to the search index, all in one transaction. Every
// chunk's recording must exist (store.ErrNotFound otherwise, and nothing is
// indexed); chunks with only white space are skipped; text goes through
// store.CleanText. An Offset that is NaN or infinite is an error.
func (s *Store) IndexText(ctx context.Context, chunks []store.TextChunk) error {
	for _, c := range chunks {
		if math.IsNaN(c.Offset) || math.IsInf(c.Offset, 0) {
			return fmt.Errorf("index text of recording %q: offset %v is not a number of seconds", c.RecordingID, c.Offset)
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index text: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// Check each recording once, and insert through one prepared
	// statement.
	stmt, err := tx.PrepareContext(ctx, `
INSERT INTO recording_text (recording_id, offset_seconds, text, times) VALUES ($1, $2, $3, $4)`)
	if err != nil {
		return fmt.Errorf("index text: prepare insert: %w", err)
	}
	defer stmt.Close()
	checked := map[string]bool{}
	n := 0
	var first, last int64
	for _, c := range chunks {
		if strings.TrimSpace(c.Text) == "" {
			continue
		}
		if !checked[c.RecordingID] {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM recordings WHERE id = $1`, c.RecordingID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("index text of recording %q: %w", c.RecordingID, store.ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("index text of recording %q: look up recording: %w", c.RecordingID, err)
			}
			checked[c.RecordingID] = true
		}
		res, err := stmt.ExecContext(ctx, c.RecordingID, c.Offset, store.CleanText(c.Text), c.Times)
		if err != nil {
			return fmt.Errorf("index text of recording %q at %gs: %w", c.RecordingID, c.Offset, err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("index text of recording %q at %gs: row id: %w", c.RecordingID, c.Offset, err)
		}
		if n == 0 {
			first = id
		}
		last = id
		n++
	}
	if n == 0 {
		return nil
	}
	// The chunks reach FTS5 in one statement (migration 0010): FTS5
	// writes a new index segment at every statement that touches it, so
	// one statement per chunk (a trigger) made thousands of tiny
	// segments, and merging them cost most of the index's CPU. Every row
	// between first and last is this transaction's: it holds SQLite's
	// write lock, and ids only grow.
	if _, err := tx.ExecContext(ctx, `
INSERT INTO recording_text_fts (rowid, text) SELECT id, text FROM recording_text WHERE id BETWEEN $1 AND $2`, first, last); err != nil {
		return fmt.Errorf("index text: full-text index: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index text: commit: %w", err)
	}
	return nil
}

// matchQuery lists the chunks matching an FTS5 expression $1 with their
// recording and offset, newest first: FTS5 walks its index in descending
// rowid order and the caller stops after limit recordings, so the cost
// does not grow with how common the words are. (Ranking by bm25 scored and
// sorted every match: 160-280 ms p50 for common words over 256 MiB.) Chunks map
// to recordings through the covering index recording_text_chunk (INDEXED
// BY: the planner would rather read the rows by rowid, each kilobytes of
// text; the index made a search matching 33,000 chunks five times
// faster).
const matchQuery = `
SELECT t.recording_id, t.offset_seconds, f.rowid
FROM recording_text_fts f
JOIN recording_text t INDEXED BY recording_text_chunk ON t.id = f.rowid
WHERE recording_text_fts MATCH $1
ORDER BY f.rowid DESC`

// snippetQuery cuts the snippets of the chunks listed (as a JSON array) in
// $2, for the FTS5 expression $1, with their recordings' user and target:
// up to 16 tokens (FTS5 allows 64), the match and some context either
// side. For a chunk whose lines appeared at different times it also
// returns those times and the whole text with hitMark before each match,
// to find the line of the first (store.MatchLine); a chunk whose lines
// appeared at once (most output) pays nothing for that.
const snippetQuery = `
SELECT f.rowid, r.user_name, r.target, snippet(recording_text_fts, 0, '«', '»', '…', 16),
    t.offset_seconds, t.times, CASE WHEN t.times = '' THEN '' ELSE highlight(recording_text_fts, 0, char(2), '') END
FROM recording_text_fts f
JOIN recording_text t INDEXED BY recording_text_chunk ON t.id = f.rowid
JOIN recordings r ON r.id = t.recording_id
WHERE recording_text_fts MATCH $1 AND f.rowid IN (SELECT value FROM json_each($2))`

// hitMark is what highlight() puts before each match in snippetQuery: a
// control character terminal text does not hold (termtext drops them).
const hitMark = "\x02"

// SearchText finds recordings with a chunk of text matching query (see
// store.ParseSearch: every word, and every "quoted phrase" as a phrase, in
// one chunk), newest first, one hit per recording: its most recently
// indexed matching chunk.
// The snippet is up to 16 tokens around the match, the matched words
// between « and », cut text marked with …, white space (line breaks
// included) collapsed to single spaces. A limit of zero or less means 100.
// A query without words is store.ErrEmptyQuery.
//
// Two queries in one read transaction: the first walks matching chunks
// newest first until limit recordings are found; the second cuts snippets
// for those chunks only (snippet() is the costly part, and a common word
// matches many chunks).
func (s *Store) SearchText(ctx context.Context, query string, limit int) ([]store.SearchHit, error) {
	terms, err := store.ParseSearch(query)
	if err != nil {
		return nil, fmt.Errorf("search %q: %w", query, err)
	}
	if limit <= 0 {
		limit = defaultSearchLimit
	}
	expr := ftsExpr(terms)
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("search %q: begin: %w", query, err)
	}
	defer func() { _ = tx.Rollback() }()

	hits, chunks, err := bestChunks(ctx, tx, expr, limit)
	if err != nil {
		return nil, fmt.Errorf("search %q: %w", query, err)
	}
	if len(hits) == 0 {
		return nil, nil
	}
	ids, err := json.Marshal(chunks)
	if err != nil {
		return nil, fmt.Errorf("search %q: %w", query, err)
	}
	rows, err := tx.QueryContext(ctx, snippetQuery, expr, string(ids))
	if err != nil {
		return nil, fmt.Errorf("search %q: snippets: %w", query, err)
	}
	defer rows.Close()
	byChunk := make(map[int64]int, len(chunks))
	for i, c := range chunks {
		byChunk[c] = i
	}
	for rows.Next() {
		var (
			chunk                 int64
			user, target, snippet string
			base                  float64
			times, marked         string
		)
		if err := rows.Scan(&chunk, &user, &target, &snippet, &base, &times, &marked); err != nil {
			return nil, fmt.Errorf("search %q: snippets: %w", query, err)
		}
		if i, ok := byChunk[chunk]; ok {
			hits[i].User, hits[i].Target = user, target
			hits[i].Snippet = strings.Join(strings.Fields(snippet), " ")
			hits[i].Offset = store.HitOffset(base, times, store.MatchLine(marked, hitMark))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search %q: snippets: %w", query, err)
	}
	return hits, nil
}

// bestChunks runs matchQuery and returns the first limit recordings' best
// hits (without user, target and snippet) and, in the same order, the ids
// of their chunks.
func bestChunks(ctx context.Context, tx *sql.Tx, expr string, limit int) ([]store.SearchHit, []int64, error) {
	rows, err := tx.QueryContext(ctx, matchQuery, expr)
	if err != nil {
		return nil, nil, fmt.Errorf("match: %w", err)
	}
	defer rows.Close()
	var (
		hits   []store.SearchHit
		chunks []int64
		seen   = map[string]bool{}
	)
	for len(hits) < limit && rows.Next() {
		var (
			h     store.SearchHit
			chunk int64
		)
		if err := rows.Scan(&h.RecordingID, &h.Offset, &chunk); err != nil {
			return nil, nil, fmt.Errorf("match: %w", err)
		}
		if seen[h.RecordingID] {
			continue
		}
		seen[h.RecordingID] = true
		hits = append(hits, h)
		chunks = append(chunks, chunk)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("match: %w", err)
	}
	return hits, chunks, nil
}

// ftsExpr turns parsed terms into an FTS5 expression: every term an FTS5
// string (double quotes, inner double quotes doubled), which FTS5 never
// reads as an operator, joined with AND. FTS5 tokenizes each string as it
// tokenized the text, so a string of several words is a phrase.
func ftsExpr(terms []store.SearchTerm) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = `"` + strings.ReplaceAll(t.Text, `"`, `""`) + `"`
	}
	return strings.Join(parts, " AND ")
}
