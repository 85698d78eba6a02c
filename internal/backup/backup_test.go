package backup

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/postgres"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
)

func put(t *testing.T, st store.Store, name string) {
	t.Helper()
	spec, _ := json.Marshal(map[string]string{"kind": "User", "name": name})
	if err := st.Apply(context.Background(), []store.Change{{Record: store.Record{Kind: "User", Name: name, Spec: spec}}}); err != nil {
		t.Fatal(err)
	}
}

func names(t *testing.T, st store.Store) string {
	t.Helper()
	recs, err := st.List(context.Background(), "User")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Name)
	}
	return strings.Join(out, ",")
}

// TestSQLiteBackupRestore: a backup taken while the store is open holds
// what was committed then; restoring it brings that back and keeps the
// replaced database beside it.
func TestSQLiteBackupRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "portcullis.db")
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	put(t, st, "alice")
	if _, err := st.AppendAudit(ctx, store.AuditEvent{Type: "x", Outcome: "info", Message: "before"}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "backup.db")
	if err := Backup(ctx, "sqlite:"+db, out); err != nil {
		t.Fatalf("Backup while open: %v", err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	if err := Backup(ctx, "sqlite:"+db, out); err == nil {
		t.Error("Backup overwrote an existing file")
	}
	put(t, st, "bob") // after the backup
	st.Close()

	kept, err := Restore(ctx, "sqlite:"+db, out)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	st2, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if got := names(t, st2); got != "alice" {
		t.Errorf("users after restore: %q, want alice", got)
	}
	if evs, _ := st2.ListAudit(ctx, store.AuditFilter{}); len(evs) != 1 || evs[0].Message != "before" {
		t.Errorf("audit after restore: %+v", evs)
	}
	// The replaced database (with bob) is kept and is itself restorable.
	prev, err := sqlite.Open(ctx, kept)
	if err != nil {
		t.Fatalf("kept database %q: %v", kept, err)
	}
	defer prev.Close()
	if got := names(t, prev); got != "alice,bob" {
		t.Errorf("kept database users: %q", got)
	}
}

func TestRestoreRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "portcullis.db")
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a database at all, just text\n"), 0o600)
	for name, c := range map[string]struct{ store, in string }{
		"garbage":     {"sqlite:" + db, garbage},
		"missing":     {"sqlite:" + db, filepath.Join(dir, "nope")},
		"bad store":   {"mysql://x", garbage},
		"empty store": {"sqlite:", garbage},
	} {
		if _, err := Restore(ctx, c.store, c.in); err == nil {
			t.Errorf("%s: Restore succeeded", name)
		}
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore created the database: %v", err)
	}
}

// TestPostgresBackupRestore: pg_dump while the store is open, a change,
// then pg_restore brings the database back to the backup.
func TestPostgresBackupRestore(t *testing.T) {
	testenv.RequireRoot(t)
	pg := testenv.StartPostgres(t)
	url := pg.NewDatabase(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	put(t, st, "alice")
	out := filepath.Join(t.TempDir(), "backup.dump")
	if err := Backup(ctx, url, out); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	put(t, st, "bob")
	st.Close()
	if _, err := Restore(ctx, url, out); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	st2, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if got := names(t, st2); got != "alice" {
		t.Errorf("users after restore: %q, want alice", got)
	}
	// A file that is not a dump changes nothing.
	bad := filepath.Join(t.TempDir(), "bad.dump")
	os.WriteFile(bad, []byte("nope"), 0o600)
	if _, err := Restore(ctx, url, bad); err == nil {
		t.Error("Restore of garbage succeeded")
	}
	if got := names(t, st2); got != "alice" {
		t.Errorf("users after a failed restore: %q, want alice", got)
	}
}
