package recording_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
)

// TestSQLiteStore runs a recording's whole life against the real embedded
// store: searchable while active, ended with its hash, interrupted and
// recovered, deleted with its index.
func TestSQLiteStore(t *testing.T) {
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
	if recs, err := m.Recover(ctx); err != nil || len(recs) != 0 {
		t.Fatalf("Recover on a new store: %v %v", recs, err)
	}
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

	meta := recording.Meta{ID: "sess-sql", User: "alice", Target: "web1", Account: "root",
		Source: "192.0.2.1:4000", Action: "shell", Width: 80, Height: 24, Term: "xterm"}
	r, err := m.Start(ctx, meta)
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("$ sudo systemctl restart nginx\r\n"))
	for i := range 25 { // a full index chunk, indexed at the next flush
		r.Output(fmt.Appendf(nil, "log line %d\r\n", i))
	}
	// Searchable while active.
	deadline := time.Now().Add(10 * time.Second)
	for {
		hits, err := st.SearchText(ctx, `"systemctl restart"`, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) == 1 && hits[0].RecordingID == "sess-sql" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("active recording not searchable: %+v", hits)
		}
		time.Sleep(20 * time.Millisecond)
	}
	size, sum, err := r.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(m.Dir(), "sess-sql.cast"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(raw)
	rec, err := st.GetRecording(ctx, "sess-sql")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != store.RecordingEnded || rec.Size != size || rec.SHA256 != sum || sum != hex.EncodeToString(h[:]) {
		t.Errorf("stored %+v; file %d bytes %x", rec, len(raw), h)
	}
	rc, got, err := m.Open(ctx, "sess-sql")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := recording.Play(ctx, rc, &out, recording.PlayOptions{At: 1e9}); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if got.ID != "sess-sql" || !strings.Contains(out.String(), "log line 24") {
		t.Errorf("Open/Play: %+v %q", got, out.String())
	}

	// A recording the gateway never closed (it was killed).
	r2, err := m.Start(ctx, recording.Meta{ID: "sess-killed", User: "bob", Target: "db1", Account: "postgres", Action: "shell"})
	if err != nil {
		t.Fatal(err)
	}
	r2.Output([]byte("working...\r\n"))
	path2 := filepath.Join(m.Dir(), "sess-killed.cast")
	for b, _ := os.ReadFile(path2); !strings.Contains(string(b), "working"); b, _ = os.ReadFile(path2) {
		time.Sleep(10 * time.Millisecond)
	}
	m2, err := recording.NewManager(m.Dir(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	m2.SetGateway("gw-1")
	recs, err := m2.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != "sess-killed" || recs[0].Gateway != "gw-1" {
		t.Fatalf("Recover: %+v", recs)
	}
	if rec, err := st.GetRecording(ctx, "sess-killed"); err != nil || rec.State != store.RecordingInterrupted || rec.SHA256 == "" {
		t.Errorf("interrupted recording stored as %+v (%v)", rec, err)
	}

	// Retention, then deletion of what is left, with the index.
	ids, err := m2.DeleteOlderThan(ctx, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 {
		t.Errorf("retention deleted %v", ids)
	}
	if hits, err := st.SearchText(ctx, "systemctl", 10); err != nil || len(hits) != 0 {
		t.Errorf("search after delete: %+v %v", hits, err)
	}
	if err := m2.Delete(ctx, "sess-sql"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete of a deleted recording: %v", err)
	}
	_, _, _ = r2.Close(ctx) // deleted meanwhile: nothing to do
}
