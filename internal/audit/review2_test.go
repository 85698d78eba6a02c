package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// TestReview2TornLineThenAppend: after a crash tears the spool's last line,
// OpenSpool drops the fragment from its queue but leaves it in the file,
// and opens the file for append. The next spooled event is glued onto the
// fragment (no newline in between): at the following start that line is
// either refused as damage (the gateway does not start) or, as the last
// line, dropped as "torn" — a durably spooled event lost.
func TestReview2TornLineThenAppend(t *testing.T) {
	st, path := newSpoolEnv(t)
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	st.down.Store(true)

	sp, err := OpenSpool(path, log)
	if err != nil {
		t.Fatal(err)
	}
	l := New(st, log)
	l.SetSpool(sp)
	if err := l.Write(ctx, store.AuditEvent{Type: SessionEnd, Outcome: Info, Message: "a"}); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	// Killed in the middle of the next line.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":2,"event":{"Ty`)
	f.Close()

	// Restart while the database is still down; two more events spool.
	sp2, err := OpenSpool(path, log)
	if err != nil {
		t.Fatal(err)
	}
	l2 := New(st, log)
	l2.SetSpool(sp2)
	for _, m := range []string{"b", "c"} {
		if err := l2.Write(ctx, store.AuditEvent{Type: SessionEnd, Outcome: Info, Message: m}); err != nil {
			t.Fatalf("Write(%s): %v", m, err)
		}
	}
	if got := sp2.Pending(); got != 3 {
		t.Fatalf("Pending = %d, want 3", got)
	}
	sp2.Close()

	// Another restart: every event Write reported as safe must be there.
	sp3, err := OpenSpool(path, log)
	if err != nil {
		t.Fatalf("OpenSpool after a torn line and two appends: %v", err)
	}
	defer sp3.Close()
	if got := sp3.Pending(); got != 3 {
		t.Fatalf("Pending after the second restart = %d, want 3 (a, b, c)", got)
	}
	st.down.Store(false)
	l3 := New(st, log)
	l3.SetSpool(sp3)
	if _, err := sp3.drain(ctx, l3); err != nil {
		t.Fatal(err)
	}
	if got := messages(t, st); fmt.Sprint(got) != "[a b c]" {
		t.Errorf("store: %v, want [a b c]", got)
	}
}

// rejectingStore refuses one event for good (as a constraint, a value the
// database cannot hold, or a bug does), and takes every other.
type rejectingStore struct {
	*flakyStore
	reject string
}

func (r *rejectingStore) AppendAudit(ctx context.Context, ev store.AuditEvent) (int64, error) {
	if ev.Message == r.reject {
		return 0, errors.New("ERROR: value violates a constraint (SQLSTATE 23514)")
	}
	return r.flakyStore.AppendAudit(ctx, ev)
}

// TestReview2PoisonEventWedgesTrail: an event the store refuses for good is
// spooled as if the store were down; it then heads the queue for ever, and
// because Write spools everything behind a waiting event, no later event
// reaches the store again although the store answers (and /healthz and
// the login check, which read Revision, say it is up). Write keeps
// returning nil, so nothing fails closed.
func TestReview2PoisonEventWedgesTrail(t *testing.T) {
	fs, path := newSpoolEnv(t)
	st := &rejectingStore{flakyStore: fs, reject: "poison"}
	log := slog.New(slog.DiscardHandler)
	sp, err := OpenSpool(path, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	l := New(st, log)
	l.SetSpool(sp)
	ctx := context.Background()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); l.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	for _, m := range []string{"before", "poison", "after1", "after2"} {
		_ = l.Write(ctx, store.AuditEvent{Type: SessionStart, Outcome: Info, Message: m})
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		got := fmt.Sprint(messages(t, fs))
		if got == "[before after1 after2]" || got == "[before poison after1 after2]" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("3 s after the writes the store holds %v with %d events stuck in the spool behind one it will never take",
		messages(t, fs), sp.Pending())
}
