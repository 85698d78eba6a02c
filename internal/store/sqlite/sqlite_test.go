package sqlite_test

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/migrations"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/store/storetest"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "portcullis.db"))
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portcullis.db")
	s := open(t, path)
	err := s.Apply(ctx, []store.Change{{Record: store.Record{
		Kind: "Target", Name: "db1", Spec: json.RawMessage(`{"address":"10.0.0.1:22"}`), Secret: []byte("sealed"),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.Get(ctx, "Target", "db1")
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.AppendAudit(ctx, store.AuditEvent{Type: "session.start", User: "alice", Detail: map[string]any{"n": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordHostKey(ctx, store.HostKey{Target: "db1", Key: "ssh-ed25519 AAAA"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	defer s.Close()
	got, err := s.Get(ctx, "Target", "db1")
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if string(got.Spec) != `{"address":"10.0.0.1:22"}` || string(got.Secret) != "sealed" ||
		!got.CreatedAt.Equal(rec.CreatedAt) || !got.UpdatedAt.Equal(rec.UpdatedAt) {
		t.Errorf("after reopen: %+v, want %+v", got, rec)
	}
	if rev, err := s.Revision(ctx); err != nil || rev != 1 {
		t.Errorf("Revision after reopen = %d, %v; want 1", rev, err)
	}
	evs, err := s.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(evs) != 1 || evs[0].ID != id || evs[0].User != "alice" || evs[0].Detail["n"] != float64(1) {
		t.Errorf("ListAudit after reopen = %+v, %v", evs, err)
	}
	if hk, err := s.HostKey(ctx, "db1"); err != nil || hk.Key != "ssh-ed25519 AAAA" {
		t.Errorf("HostKey after reopen = %+v, %v", hk, err)
	}
	// IDs keep growing across a reopen.
	next, err := s.AppendAudit(ctx, store.AuditEvent{Type: "session.end"})
	if err != nil || next <= id {
		t.Errorf("AppendAudit after reopen = %d, %v; want an id above %d", next, err, id)
	}
}

// TestAuditIDsNotReused checks that deleting the newest events (as a
// retention job could, or an admin) does not make the next event reuse their
// ids, which would confuse a reader tailing with AfterID.
func TestAuditIDsNotReused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portcullis.db")
	s := open(t, path)
	var last int64
	for range 3 {
		var err error
		if last, err = s.AppendAudit(ctx, store.AuditEvent{Type: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	if _, err := db.Exec("DELETE FROM audit_events"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	id, err := s.AppendAudit(ctx, store.AuditEvent{Type: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if id <= last {
		t.Errorf("id %d after deleting up to %d: ids were reused", id, last)
	}
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestFileMode(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portcullis.db")
	s := open(t, path)
	defer s.Close()
	// A write, so that the -wal and -shm files exist too.
	if _, err := s.AppendAudit(ctx, store.AuditEvent{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(p), mode)
		}
	}
}

func TestPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portcullis.db")
	s := open(t, path)
	defer s.Close()
	db := rawDB(t, path)
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var ps int
	if err := db.QueryRow("PRAGMA page_size").Scan(&ps); err != nil || ps != 16384 {
		t.Errorf("page_size = %d, %v; want 16384 (index chunks fill them better)", ps, err)
	}
	// 2 is MEMORY: a statement journal on disk made every audit append
	// open, write and remove a temporary file (BenchmarkAppendAudit).
	if ts, err := sqlite.WritePragma(s, "temp_store"); err != nil || ts != 2 {
		t.Errorf("temp_store on the write connection = %d, %v; want 2 (memory)", ts, err)
	}
	var v int
	if err := db.QueryRow("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil || v != migrations.Latest() {
		t.Errorf("schema version = %d, %v; want %d", v, err, migrations.Latest())
	}
}

// TestOddPath checks that a path with URI metacharacters opens the file it
// names rather than a truncated one.
func TestOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b?c#d%20e")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "p.db")
	s := open(t, path)
	if _, err := s.AppendAudit(context.Background(), store.AuditEvent{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the path given: %v", err)
	}
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("files beside the directory: %v, want only the directory", entries)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, path := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "missing", "p.db")} {
		if s, err := sqlite.Open(ctx, path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

// TestContextCancelled checks that a cancelled Apply writes nothing and
// leaves the store usable: the single write connection must not be lost.
func TestContextCancelled(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "portcullis.db"))
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Apply(ctx, []store.Change{{Record: store.Record{Kind: "User", Name: "a", Spec: json.RawMessage(`{}`)}}})
	if err == nil {
		t.Fatal("Apply with a cancelled context succeeded")
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := s.Apply(ctx, []store.Change{{Record: store.Record{Kind: "User", Name: "b", Spec: json.RawMessage(`{}`)}}}); err != nil {
		t.Fatalf("Apply after a cancelled one: %v", err)
	}
	if rev, err := s.Revision(ctx); err != nil || rev != 1 {
		t.Errorf("Revision = %d, %v; want 1", rev, err)
	}
}

// TestTwoStoresOneFile checks that two stores on one file (as two processes
// would have) wait for each other's write lock instead of failing with
// SQLITE_BUSY.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portcullis.db")
	a, b := open(t, path), open(t, path)
	defer a.Close()
	defer b.Close()
	const each = 50
	errs := make(chan error, 4*each)
	var wg sync.WaitGroup
	for i := range 4 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for j := range each {
				if _, err := s.AppendAudit(ctx, store.AuditEvent{Type: "x"}); err != nil {
					errs <- err
				}
				name := fmt.Sprint(i, "-", j)
				if err := s.Apply(ctx, []store.Change{{Record: store.Record{Kind: "User", Name: name, Spec: json.RawMessage(`{}`)}}}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if rev, err := b.Revision(ctx); err != nil || rev != 4*each {
		t.Errorf("Revision = %d, %v; want %d", rev, err, 4*each)
	}
	if evs, err := a.ListAudit(ctx, store.AuditFilter{}); err != nil || len(evs) != 4*each {
		t.Errorf("ListAudit: %d events, %v; want %d", len(evs), err, 4*each)
	}
}

// TestMigrationChainsOldEvents opens a database written at schema version 1
// (events without hashes, details as version 1 encoded them) and checks
// that after the migration ListAudit returns one chain that recomputes.
func TestMigrationChainsOldEvents(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portcullis.db")
	v1, err := os.ReadFile(filepath.Join("..", "migrations", "0001_initial.sql"))
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	schema := strings.NewReplacer("{{identity}}", "INTEGER PRIMARY KEY AUTOINCREMENT", "{{bytes}}", "BLOB").Replace(string(v1))
	for _, q := range []string{
		schema,
		`CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '0001_initial.sql', 0)`,
		`INSERT INTO audit_events (time, type, user_name, message, detail) VALUES
		    (1000, 'login.success', 'alice', 'in', '{"method":"publickey"}'),
		    (2000, 'session.start', 'alice', 'start', NULL),
		    (3000, 'session.end', 'alice', 'end', '{"bytes":12345678901234567890,"z":{"b":[1,2.50],"a":"\u00e9"}}')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.40s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := open(t, path)
	defer s.Close()
	evs, err := s.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(evs) != 3 {
		t.Fatalf("ListAudit = %d events, %v", len(evs), err)
	}
	prev := ""
	for _, ev := range evs {
		if ev.PrevHash != prev || ev.Hash == "" || store.HashEvent(ev.PrevHash, ev) != ev.Hash {
			t.Errorf("event %d: prev %q hash %q; want prev %q and a hash that recomputes", ev.ID, ev.PrevHash, ev.Hash, prev)
		}
		prev = ev.Hash
	}
	id, err := s.AppendAudit(ctx, store.AuditEvent{Type: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if next, err := s.ListAudit(ctx, store.AuditFilter{AfterID: id - 1}); err != nil || len(next) != 1 || next[0].PrevHash != prev {
		t.Errorf("first event after the migration: %+v, %v; want it chained to %q", next, err, prev)
	}
}

// TestAuditChainFollowsOtherWriters: a Store chains its next event to the
// trail as it is, not as its own last append left it: after another
// process appended, and after the newest events were deleted.
func TestAuditChainFollowsOtherWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portcullis.db")
	a := open(t, path)
	defer a.Close()
	b := open(t, path)
	defer b.Close()
	appendTo := func(s *sqlite.Store, typ string) {
		t.Helper()
		if _, err := s.AppendAudit(ctx, store.AuditEvent{Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	appendTo(a, "a1")
	appendTo(a, "a2")
	appendTo(b, "b1") // a's view of the newest event is now stale
	appendTo(a, "a3")
	db := rawDB(t, path)
	if _, err := db.Exec("DELETE FROM audit_events WHERE type = 'a3'"); err != nil {
		t.Fatal(err)
	}
	appendTo(a, "a4") // chains to b1, with an ID a3 never had
	appendTo(a, "a5")
	evs, err := a.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(evs, func(x, y store.AuditEvent) int { return cmp.Compare(x.ID, y.ID) })
	var types []string
	prev, lastID := "", int64(0)
	for _, ev := range evs {
		types = append(types, ev.Type)
		if ev.PrevHash != prev {
			t.Errorf("%s (id %d): prev hash %q, want %q", ev.Type, ev.ID, ev.PrevHash, prev)
		}
		if ev.Hash != store.HashEvent(ev.PrevHash, ev) {
			t.Errorf("%s (id %d): hash does not match the event", ev.Type, ev.ID)
		}
		if ev.ID <= lastID {
			t.Errorf("%s: id %d after %d", ev.Type, ev.ID, lastID)
		}
		prev, lastID = ev.Hash, ev.ID
	}
	if want := []string{"a1", "a2", "b1", "a4", "a5"}; !slices.Equal(types, want) {
		t.Errorf("trail %v, want %v", types, want)
	}
	if evs[3].ID != 5 {
		t.Errorf("a4 took id %d, want 5 (a3's 4 is not reused)", evs[3].ID)
	}
}
