package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"

	"github.com/portcullis/portcullis/internal/store"
)

// defaultSearchLimit is the number of hits SearchText returns when its
// limit is zero or less.
const defaultSearchLimit = 100

// IndexText adds chunks to the search index, all in one transaction and
// one INSERT. Every chunk's recording must exist (store.ErrNotFound
// otherwise, and nothing is indexed); chunks with only white space are
// skipped; text goes through store.CleanText. An Offset that is NaN or
// infinite is an error. Chunks of one call are indexed in the order given,
// which is the order "newest first" in SearchText refers to.
func (s *Store) IndexText(ctx context.Context, chunks []store.TextChunk) error {
	var (
		recs, texts, times []string
		offsets            []float64
		want               = map[string]bool{}
	)
	for _, c := range chunks {
		if math.IsNaN(c.Offset) || math.IsInf(c.Offset, 0) {
			return fmt.Errorf("index text of recording %q: offset %v is not a number of seconds", c.RecordingID, c.Offset)
		}
		if strings.TrimSpace(c.Text) == "" {
			continue
		}
		recs = append(recs, c.RecordingID)
		offsets = append(offsets, c.Offset)
		texts = append(texts, store.CleanText(c.Text))
		times = append(times, c.Times)
		want[c.RecordingID] = true
	}
	if len(recs) == 0 {
		return nil
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index text: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// FOR KEY SHARE holds the recordings until commit: a DeleteRecording
	// from another gateway waits rather than leaving this text orphaned
	// (or failing it on the foreign key).
	rows, err := tx.QueryContext(ctx, `SELECT id FROM recordings WHERE id = ANY($1) FOR KEY SHARE`, ids)
	if err != nil {
		return fmt.Errorf("index text: look up recordings: %w", err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("index text: look up recordings: %w", err)
		}
		delete(want, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("index text: look up recordings: %w", err)
	}
	for _, c := range chunks { // the first missing one, in the caller's order
		if want[c.RecordingID] {
			return fmt.Errorf("index text of recording %q: %w", c.RecordingID, store.ErrNotFound)
		}
	}
	if _, err := tx.ExecContext(ctx, `
INSERT INTO recording_text (recording_id, offset_seconds, text, times)
SELECT r, o, t, l FROM unnest($1::text[], $2::float8[], $3::text[], $4::text[]) WITH ORDINALITY AS u (r, o, t, l, n)
ORDER BY n`, recs, offsets, texts, times); err != nil {
		return fmt.Errorf("index text: insert %d chunks: %w", len(recs), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index text: commit: %w", err)
	}
	return nil
}

// termQuery turns one search term ($%d) into a tsquery. It must split the
// term into words exactly as the tsv column (migration 0005's
// .postgres.sql) splits indexed text, or a term never matches: so the same
// replacement of every run of characters other than letters and digits by
// a space (without which the 'simple' parser keeps a path, a host name or
// an e-mail address as one token), then the same parser. nginx.conf is
// thus the phrase "nginx conf", as on SQLite.
const termQuery = "phraseto_tsquery('simple', regexp_replace($%d, '[^[:alnum:]]+', ' ', 'g'))"

// headlineText is the text ts_headline cuts a snippet from: the chunk
// with every run of characters other than letters, digits and white
// space wrapped in headlineMark, chr(1). The parser reads the marks as
// blanks, and so finds the words the tsv column holds (in the text itself
// it would see "/etc/nginx/nginx.conf" as one token and mark none of it),
// while the punctuation stays in the headline for snippet to give back
// once it removes the marks.
const headlineText = `regexp_replace(t.text, '[^[:alnum:][:space:]]+', chr(1) || '\&' || chr(1), 'g')`

// hitMark is chr(2), which searchQuery's second headline puts before every
// match.
const hitMark = "\x02"

// headlineMark is chr(1), a control character terminal text hardly
// holds; snippet drops it, and so any the text held, from snippets.
const headlineMark = "\x01"

// searchQuery finds, for the tsquery in q, each matching recording's most
// recently indexed matching chunk, keeps the limit ($1) newest of those,
// and only for them cuts a snippet with ts_headline (the costly part: it
// re-parses the chunk's text). %s is the tsquery expression.
//
// Snippet options: up to 16 words around the match like the SQLite store's
// snippet(), matches between « and ». For a chunk whose lines appeared at
// different times, it also returns those times, the first line that
// matches the whole query by itself (split and parsed as the tsv column
// is), and, for a match no line holds alone (words on different lines),
// the whole text with hitMark before each matched word, to take the line
// of the first (store.MatchLine). ts_headline marks every word of a
// phrase wherever it is, so the marks alone could point at a line that
// has the phrase's first word but not the phrase. A chunk whose lines
// appeared at once (most output) pays nothing for either.
const searchQuery = `
WITH q AS (SELECT %s AS query),
best AS (
    SELECT DISTINCT ON (t.recording_id) t.id, t.recording_id, t.offset_seconds
    FROM recording_text t, q
    WHERE t.tsv @@ q.query
    ORDER BY t.recording_id, t.id DESC
),
top AS (SELECT id, recording_id, offset_seconds FROM best ORDER BY id DESC LIMIT $1)
SELECT top.recording_id, top.offset_seconds, r.user_name, r.target,
    ts_headline('simple', ` + headlineText + `, q.query, 'StartSel=«, StopSel=», MaxWords=16, MinWords=6'),
    t.text, t.times,
    CASE WHEN t.times = '' THEN '' ELSE ts_headline('simple', ` + headlineText + `, q.query,
        'HighlightAll=true, StopSel="", StartSel=' || chr(2)) END,
    CASE WHEN t.times = '' THEN NULL ELSE (
        SELECT min(l.n) - 1 FROM regexp_split_to_table(t.text, E'\n') WITH ORDINALITY AS l (line, n)
        WHERE to_tsvector('simple', regexp_replace(l.line, '[^[:alnum:]]+', ' ', 'g')) @@ q.query) END
FROM top
JOIN recording_text t ON t.id = top.id
JOIN recordings r ON r.id = top.recording_id
CROSS JOIN q
ORDER BY top.id DESC`

// SearchText finds recordings with a chunk of text matching query (see
// store.ParseSearch: every word, and every "quoted phrase" as a phrase, in
// one chunk), newest first, one hit per recording: its most recently
// indexed matching chunk. The snippet is up to 16 words around the match,
// the matched words between « and », cut text marked with …, white space
// collapsed to single spaces. A limit of zero or less means 100. A query
// without words is store.ErrEmptyQuery.
//
// Each term becomes a phrase of its words and numbers (termQuery: a word
// is a phrase of one, nginx.conf the phrase "nginx conf", split as the
// text was), and the terms are joined with &&. Terms travel as parameters: nothing the user typed
// is read as tsquery syntax.
func (s *Store) SearchText(ctx context.Context, query string, limit int) ([]store.SearchHit, error) {
	terms, err := store.ParseSearch(query)
	if err != nil {
		return nil, fmt.Errorf("search %q: %w", query, err)
	}
	if limit <= 0 {
		limit = defaultSearchLimit
	}
	args := []any{int64(limit)}
	parts := make([]string, len(terms))
	for i, term := range terms {
		args = append(args, term.Text)
		parts[i] = fmt.Sprintf(termQuery, len(args))
	}
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(searchQuery, strings.Join(parts, " && ")), args...)
	if err != nil {
		return nil, fmt.Errorf("search %q: %w", query, err)
	}
	defer rows.Close()
	var hits []store.SearchHit
	for rows.Next() {
		var (
			h             store.SearchHit
			head, text    string
			times, marked string
			line          sql.NullInt64
		)
		if err := rows.Scan(&h.RecordingID, &h.Offset, &h.User, &h.Target, &head, &text, &times, &marked, &line); err != nil {
			return nil, fmt.Errorf("search %q: %w", query, err)
		}
		at := store.MatchLine(marked, hitMark)
		if line.Valid {
			at = int(line.Int64)
		}
		h.Offset = store.HitOffset(h.Offset, times, at)
		h.Snippet = snippet(head, text)
		hits = append(hits, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search %q: %w", query, err)
	}
	return hits, nil
}

// snippet removes headlineText's marks from a headline of text, collapses
// its white space and marks with … a side where the headline cut text off,
// as the SQLite store's snippets do (ts_headline does not mark cuts).
func snippet(head, text string) string {
	head = strings.Join(strings.Fields(strings.ReplaceAll(head, headlineMark, "")), " ")
	plain := strings.NewReplacer("«", "", "»", "").Replace(head)
	whole := strings.Join(strings.Fields(strings.NewReplacer("«", "", "»", "", headlineMark, "").Replace(text)), " ")
	if plain == "" || plain == whole {
		return head
	}
	if !strings.HasPrefix(whole, plain) {
		head = "…" + head
	}
	if !strings.HasSuffix(whole, plain) {
		head += "…"
	}
	return head
}
