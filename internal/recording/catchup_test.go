package recording_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
)

// found reports whether a search for word hits recording id.
func found(t *testing.T, st store.Store, word, id string) bool {
	t.Helper()
	hits, err := st.SearchText(context.Background(), word, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hits {
		if h.RecordingID == id {
			return true
		}
	}
	return false
}

// TestCatchUpIndexesWhatTheBudgetSkipped: a flood of output past the live
// budget is searchable only at its start while the session
// runs; once it ends, the catch-up indexes the rest from the file, the
// recording's index state goes partial -> complete, and a number from the
// middle is found. (The old code left it unsearchable for ever.) Then a
// catch-up resumed from a stored offset indexes from there on only.
func TestCatchUpIndexesWhatTheBudgetSkipped(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := recording.NewManager(filepath.Join(dir, "rec"), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.SetGateway("gw-1")
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.Run(runCtx)
	}()
	defer func() {
		stop()
		wg.Wait()
	}()

	// 700 KB of output, 2.7 times the live budget, with marks at its
	// start, a quarter, the middle, three quarters and the end. The
	// filler repeats its words: a flood of unique words (seq) costs the
	// index far more, and the race detector another tenfold.
	const id = "sess-flood"
	r, err := m.Start(ctx, recording.Meta{ID: id, User: "alice", Target: "web1", Account: "root",
		Action: "exec", Command: "flood", Width: 80, Height: 24})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, mark := range []string{"firstword", "early 111111", "middle 1234567", "late 999999", "lastword"} {
		fmt.Fprintf(&out, "%s\n", mark)
		for i := 0; i < 4000 && mark != "lastword"; i++ {
			out.WriteString("the quick brown fox jumps over the lazy dog\n")
			if out.Len() > 32<<10 {
				r.Output(out.Bytes())
				out.Reset()
			}
		}
	}
	r.Output(out.Bytes())
	if rec, _ := st.GetRecording(ctx, id); rec.IndexState != store.IndexLive {
		t.Errorf("index state while active: %q, want live", rec.IndexState)
	}
	// The start is indexed live; wait for it, then the middle must not be
	// (the budget), which is what the catch-up is for.
	deadline := time.Now().Add(5 * time.Minute) // generous: -race on a loaded machine
	for !found(t, st, "firstword", id) {
		if time.Now().After(deadline) {
			t.Fatal("the start of the flood never became searchable")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if found(t, st, "1234567", id) {
		t.Fatal("the middle of a flood was indexed live: the test does not exceed the budget")
	}
	closed := time.Now()
	if _, _, err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		rec, err := st.GetRecording(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.IndexState == store.IndexComplete {
			break
		}
		if rec.IndexState != store.IndexPartial && rec.IndexState != store.IndexLive {
			t.Fatalf("index state %q", rec.IndexState)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the catch-up did not finish: %q at %d", rec.IndexState, rec.IndexOffset)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("catch-up took %s after the session ended", time.Since(closed))
	for _, w := range []string{"firstword", "111111", "1234567", "999999", "lastword"} {
		if !found(t, st, w, id) {
			t.Errorf("%s not found after the catch-up", w)
		}
	}

	// Resume: from an offset in the middle of the file, only what
	// follows is indexed again.
	b, err := os.ReadFile(filepath.Join(m.Dir(), id+".cast"))
	if err != nil {
		t.Fatal(err)
	}
	mid := int64(bytes.IndexByte(b[len(b)/2:], '\n') + len(b)/2 + 1)
	if err := st.DeleteRecordingText(ctx, id); err != nil {
		t.Fatal(err)
	}
	rec, _ := st.GetRecording(ctx, id)
	rec.IndexState, rec.IndexOffset = store.IndexPartial, mid
	if err := m.IndexFile(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if found(t, st, "111111", id) || !found(t, st, "999999", id) {
		t.Errorf("resumed catch-up: 111111 found %v (want false), 999999 found %v (want true)",
			found(t, st, "111111", id), found(t, st, "999999", id))
	}
	if rec, _ := st.GetRecording(ctx, id); rec.IndexState != store.IndexComplete || rec.IndexOffset != int64(len(b)) {
		t.Errorf("after the resumed catch-up: %q at %d, want complete at %d", rec.IndexState, rec.IndexOffset, len(b))
	}
}
