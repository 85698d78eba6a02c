package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
)

// flakyStore is a real store whose AppendAudit fails while down is set,
// as a PostgreSQL being restarted does.
type flakyStore struct {
	store.Store
	down atomic.Bool
}

func (f *flakyStore) AppendAudit(ctx context.Context, ev store.AuditEvent) (int64, error) {
	if f.down.Load() {
		return 0, errors.New("connection refused")
	}
	return f.Store.AppendAudit(ctx, ev)
}

func (f *flakyStore) Revision(ctx context.Context) (int64, error) {
	if f.down.Load() {
		return 0, errors.New("connection refused")
	}
	return f.Store.Revision(ctx)
}

func (f *flakyStore) CheckWritable(ctx context.Context) error {
	if f.down.Load() {
		return errors.New("connection refused")
	}
	return f.Store.CheckWritable(ctx)
}

func newSpoolEnv(t *testing.T) (*flakyStore, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &flakyStore{Store: st}, filepath.Join(dir, "audit.spool")
}

func messages(t *testing.T, st store.Store) []string {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Message)
	}
	return out
}

// TestSpoolKeepsOrderThroughAnOutage: events written while the store is
// down wait in the spool; one written after it is back still goes behind
// them; all reach the store in order, chained, and the spool empties.
func TestSpoolKeepsOrderThroughAnOutage(t *testing.T) {
	st, path := newSpoolEnv(t)
	log := slog.New(slog.DiscardHandler)
	sp, err := OpenSpool(path, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	l := New(st, log)
	l.SetSpool(sp)
	ctx := context.Background()
	write := func(msg string) {
		t.Helper()
		if err := l.Write(ctx, store.AuditEvent{Type: SessionStart, Outcome: Info, Message: msg}); err != nil {
			t.Fatalf("Write(%s): %v", msg, err)
		}
	}
	write("e1")
	st.down.Store(true)
	write("e2")
	write("e3")
	st.down.Store(false)
	write("e4") // the store answers, but e2 and e3 wait: e4 queues behind them
	if got := sp.Pending(); got != 3 {
		t.Fatalf("Pending = %d, want 3", got)
	}
	if got := messages(t, st); fmt.Sprint(got) != "[e1]" {
		t.Fatalf("store before draining: %v", got)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); l.Run(runCtx) }()
	for i := 0; sp.Pending() > 0; i++ {
		if i > 500 {
			t.Fatal("spool never drained")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	write("e5")
	if got := messages(t, st); fmt.Sprint(got) != "[e1 e2 e3 e4 e5]" {
		t.Errorf("store after draining: %v", got)
	}
	if v, err := Verify(ctx, st, testKey(t).Public(), nil); err != nil || !v.OK {
		t.Errorf("chain after draining: %+v %v", v, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("spool after draining: %v %v", fi, err)
	}
}

// TestSpoolSurvivesRestart: a gateway killed while events wait finds them
// at the next start, a torn last line is dropped, and progress recorded
// before the kill is not replayed.
func TestSpoolSurvivesRestart(t *testing.T) {
	st, path := newSpoolEnv(t)
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	sp, err := OpenSpool(path, log)
	if err != nil {
		t.Fatal(err)
	}
	l := New(st, log)
	l.SetSpool(sp)
	st.down.Store(true)
	for _, m := range []string{"a", "b", "c"} {
		if err := l.Write(ctx, store.AuditEvent{Type: SessionEnd, Outcome: Info, Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	sp.Close()
	// "a" was appended and its progress recorded just before the kill;
	// the kill tore a fourth line.
	if _, err := st.Store.AppendAudit(ctx, store.AuditEvent{Type: SessionEnd, Outcome: Info, Message: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".done", []byte("1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":4,"event":{"Ty`)
	f.Close()

	sp2, err := OpenSpool(path, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sp2.Close()
	if got := sp2.Pending(); got != 2 {
		t.Fatalf("Pending after restart = %d, want 2", got)
	}
	st.down.Store(false)
	l2 := New(st, log)
	l2.SetSpool(sp2)
	if n, err := sp2.drain(ctx, l2); err != nil || n != 2 {
		t.Fatalf("drain = %d, %v", n, err)
	}
	if got := messages(t, st); fmt.Sprint(got) != "[a b c]" {
		t.Errorf("store: %v", got)
	}
}

// TestSpoolRefusesDamage: a bad line before the last is damage to report,
// not to skip.
func TestSpoolRefusesDamage(t *testing.T) {
	_, path := newSpoolEnv(t)
	os.WriteFile(path, []byte("garbage\n{\"seq\":2,\"event\":{}}\n"), 0o600)
	if _, err := OpenSpool(path, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("OpenSpool accepted a damaged spool")
	}
}
