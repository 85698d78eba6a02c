package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// TestIndexTextOneSegmentPerBatch checks that a batch of chunks reaches
// FTS5 in one statement (migration 0010): one flush, one new index segment.
// A trigger per row made one segment per chunk, and merging them cost most
// of the index's CPU (BenchmarkCatchUp in internal/recording measures it).
// It also checks that the index stays consistent with recording_text
// through batches, blank chunks, and deletes (the delete trigger stays:
// one DELETE statement already flushes once), with FTS5's integrity-check,
// and that search finds what is left and not what was deleted.
func TestIndexTextOneSegmentPerBatch(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portcullis.db")
	s := open(t, path)
	defer s.Close()
	for _, id := range []string{"rec-a", "rec-b"} {
		if err := s.CreateRecording(ctx, store.Recording{ID: id, User: "u", Target: "t", StartedAt: time.Unix(1, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	db := rawDB(t, path)
	segments := func() int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(DISTINCT segid) FROM recording_text_fts_idx`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	integrity := func() {
		t.Helper()
		if _, err := db.ExecContext(ctx, `INSERT INTO recording_text_fts (recording_text_fts, rank) VALUES ('integrity-check', 1)`); err != nil {
			t.Fatalf("FTS5 integrity-check: %v", err)
		}
	}

	var chunks []store.TextChunk
	for i := range 300 {
		id := "rec-a"
		if i%2 == 1 {
			id = "rec-b"
		}
		text := fmt.Sprintf("line%d alpha%d\nbeta%d", i, i, i)
		if i%50 == 7 {
			text = " \n\t" // blank: skipped, must not shift what the index holds
		}
		chunks = append(chunks, store.TextChunk{RecordingID: id, Offset: float64(i), Text: text})
	}
	if err := s.IndexText(ctx, chunks); err != nil {
		t.Fatal(err)
	}
	if n := segments(); n > 1 {
		t.Errorf("one batch of 300 chunks made %d index segments, want 1", n)
	}
	integrity()

	if err := s.IndexText(ctx, []store.TextChunk{{RecordingID: "rec-a", Offset: 400, Text: "gamma zeta"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRecordingText(ctx, "rec-b"); err != nil {
		t.Fatal(err)
	}
	integrity()

	for _, c := range []struct {
		query string
		want  []string
	}{
		{"alpha298", []string{"rec-a"}},
		{"alpha299", nil}, // rec-b's text was deleted
		{"alpha7", nil},   // the blank chunk
		{"gamma", []string{"rec-a"}},
		{"beta1", nil}, // rec-b
	} {
		hits, err := s.SearchText(ctx, c.query, 10)
		if err != nil {
			t.Fatalf("search %q: %v", c.query, err)
		}
		var got []string
		for _, h := range hits {
			got = append(got, h.RecordingID)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("search %q: got %v, want %v", c.query, got, c.want)
		}
	}

	// Deleting the whole recording takes its index entries too.
	if err := s.DeleteRecording(ctx, "rec-a"); err != nil {
		t.Fatal(err)
	}
	integrity()
	for _, q := range []string{"alpha298", "gamma"} {
		if hits, err := s.SearchText(ctx, q, 10); err != nil || len(hits) != 0 {
			t.Errorf("search %q after deleting every recording: %v, %v", q, hits, err)
		}
	}
}
