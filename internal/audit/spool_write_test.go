package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portcullis/portcullis/internal/store"
)

// readOnlyStore is a real store that reads but refuses writes while ro is
// set, as a SQLite file another process holds a write lock on (or that was
// made read-only) does: Revision and AuditHead answer, AppendAudit fails.
type readOnlyStore struct {
	store.Store
	ro atomic.Bool
}

func (f *readOnlyStore) AppendAudit(ctx context.Context, ev store.AuditEvent) (int64, error) {
	if f.ro.Load() {
		return 0, errors.New("append audit: commit: database is locked (5) (SQLITE_BUSY)")
	}
	return f.Store.AppendAudit(ctx, ev)
}

func (f *readOnlyStore) CheckWritable(ctx context.Context) error {
	if f.ro.Load() {
		return errors.New("check the store takes writes: database is locked (5) (SQLITE_BUSY)")
	}
	return f.Store.CheckWritable(ctx)
}

// TestSpoolTakesWritesARefusingStoreRefuses: a store that answers reads
// but refuses writes (the old code spooled only when Revision failed, and
// sent these events to stderr only) gets every event spooled, Health says
// so, checkpoints taken meanwhile sign only the stored head, and once it
// takes writes again the events are appended in order, chained, and the
// trail verifies against every checkpoint.
func TestSpoolTakesWritesARefusingStoreRefuses(t *testing.T) {
	flaky, path := newSpoolEnv(t)
	st := &readOnlyStore{Store: flaky.Store}
	log := slog.New(slog.DiscardHandler)
	sp, err := OpenSpool(path, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	l := New(st, log)
	l.SetSpool(sp)
	key := newKey(t, st)
	cps := NewCheckpointer(CheckpointConfig{Store: st, Key: key, Gateway: "gw1", Audit: l, Log: log})
	l.SetCheckpointer(cps)
	ctx := context.Background()
	write := func(typ, msg string) {
		t.Helper()
		if err := l.Write(ctx, store.AuditEvent{Type: typ, Outcome: Info, Message: msg}); err != nil {
			t.Fatalf("Write(%s): %v (must be spooled, not refused)", msg, err)
		}
	}
	var signed []store.AuditCheckpoint
	checkpoint := func() {
		t.Helper()
		cp, ok, err := cps.Checkpoint(ctx)
		if err != nil {
			t.Fatalf("Checkpoint: %v", err)
		}
		if ok {
			signed = append(signed, cp)
		}
	}

	write(LoginSuccess, "e1")
	checkpoint()
	if err := l.Health(); err != nil {
		t.Fatalf("Health with a writable store: %v", err)
	}
	st.ro.Store(true)
	write(LoginSuccess, "e2")
	write(SessionStart, "e3")
	checkpoint() // nothing new is stored: nothing new is signed
	write(SessionEnd, "e4")
	if got := sp.Pending(); got != 3 {
		t.Fatalf("Pending = %d, want 3", got)
	}
	herr := l.Health()
	if herr == nil || !strings.Contains(herr.Error(), "3 audit events wait") || !strings.Contains(herr.Error(), "locked") {
		t.Fatalf("Health while writes fail = %v", herr)
	}
	if n, err := sp.drain(ctx, l); err == nil || n != 0 {
		t.Fatalf("drain while writes fail = %d, %v; want 0 and an error, nothing set aside", n, err)
	}
	if _, err := os.Stat(path + ".rejected"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("events were set aside as refused while the store was only locked: %v", err)
	}
	st.ro.Store(false)
	write(LoginSuccess, "e5") // behind those waiting
	if n, err := sp.drain(ctx, l); err != nil || n != 4 {
		t.Fatalf("drain = %d, %v", n, err)
	}
	if err := l.Health(); err != nil {
		t.Errorf("Health after draining: %v", err)
	}
	checkpoint()
	if got := messages(t, st); fmt.Sprint(got) != "[e1 e2 e3 e4 e5]" {
		t.Errorf("store: %v", got)
	}
	if len(signed) != 2 {
		t.Fatalf("%d checkpoints signed, want 2 (before and after the outage)", len(signed))
	}
	v, err := Verify(ctx, st, key.Public(), signed)
	if err != nil || !v.OK {
		t.Errorf("trail after draining: %+v %v", v, err)
	}
}

// TestWriteFailsClosedOnlyWhenTheSpoolFails: with the store refusing
// writes, Write reports success while the spool takes the event, and an
// error (so a login can be refused) once the spool cannot.
func TestWriteFailsClosedOnlyWhenTheSpoolFails(t *testing.T) {
	flaky, path := newSpoolEnv(t)
	st := &readOnlyStore{Store: flaky.Store}
	st.ro.Store(true)
	log := slog.New(slog.DiscardHandler)
	sp, err := OpenSpool(path, log)
	if err != nil {
		t.Fatal(err)
	}
	l := New(st, log)
	l.SetSpool(sp)
	ctx := context.Background()
	if err := l.Write(ctx, store.AuditEvent{Type: LoginSuccess, Outcome: Success}); err != nil {
		t.Fatalf("Write with a working spool: %v", err)
	}
	sp.Close() // the spool can no longer be written
	if err := l.Write(ctx, store.AuditEvent{Type: LoginSuccess, Outcome: Success}); err == nil {
		t.Fatal("Write reported success with neither the store nor the spool taking the event")
	}
}

// TestInvalidEventSetAside: an event no store takes (no type) is not
// spooled (it would hold up the spool for ever) but kept in the rejected
// file; one whose detail does not encode is stored with its detail as text.
func TestInvalidEventSetAside(t *testing.T) {
	flaky, path := newSpoolEnv(t)
	log := slog.New(slog.DiscardHandler)
	sp, err := OpenSpool(path, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	l := New(flaky, log)
	l.SetSpool(sp)
	bad := store.AuditEvent{Message: "no type"}
	if err := l.Write(context.Background(), bad); err == nil {
		t.Fatal("Write took an event without a type")
	}
	if sp.Pending() != 0 {
		t.Fatal("an invalid event was spooled")
	}
	b, err := os.ReadFile(path + ".rejected")
	if err != nil || !strings.Contains(string(b), "no type") {
		t.Fatalf("rejected file: %q %v", b, err)
	}
	odd := store.AuditEvent{Type: SessionEnd, Message: "odd detail", Detail: map[string]any{"f": func() {}}}
	if err := l.Write(context.Background(), odd); err != nil {
		t.Fatalf("Write of an event whose detail does not encode: %v", err)
	}
	if got := messages(t, flaky); fmt.Sprint(got) != "[odd detail]" {
		t.Errorf("store: %v", got)
	}
}

// releasedStore refuses the next appends (a lock held), and takes writes
// again by the time anyone checks: the lock was released in between.
type releasedStore struct {
	store.Store
	failNext atomic.Int32
}

func (f *releasedStore) AppendAudit(ctx context.Context, ev store.AuditEvent) (int64, error) {
	if f.failNext.Add(-1) >= 0 {
		return 0, errors.New("database is locked (SQLITE_BUSY)")
	}
	return f.Store.AppendAudit(ctx, ev)
}

// TestLockReleasedMidDrainIsNoRefusal: an append that failed on a lock
// released just before the writability check is tried again, not set
// aside as an event the store refuses (which lost it from the trail).
func TestLockReleasedMidDrainIsNoRefusal(t *testing.T) {
	flaky, path := newSpoolEnv(t)
	st := &releasedStore{Store: flaky.Store}
	log := slog.New(slog.DiscardHandler)
	sp, err := OpenSpool(path, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	l := New(st, log)
	l.SetSpool(sp)
	ctx := context.Background()
	st.failNext.Store(2) // Write's append, then the drain's first try
	if err := l.Write(ctx, store.AuditEvent{Type: LoginSuccess, Outcome: Success, Message: "login"}); err != nil {
		t.Fatal(err)
	}
	if n, err := sp.drain(ctx, l); err != nil || n != 1 {
		t.Fatalf("drain = %d, %v", n, err)
	}
	if got := messages(t, st); fmt.Sprint(got) != "[login]" {
		t.Errorf("store: %v (the event was set aside: %v)", got, fileExists(path+".rejected"))
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
