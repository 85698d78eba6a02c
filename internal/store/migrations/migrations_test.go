package migrations

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"testing/fstest"

	_ "modernc.org/sqlite"
)

// memDB opens a private in-memory SQLite database. One connection, because
// every connection to ":memory:" is a database of its own.
func memDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func version(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEmbeddedFilesLoad(t *testing.T) {
	for _, d := range []Dialect{SQLite, Postgres} {
		ms, err := load(d)
		if err != nil {
			t.Fatalf("load(%v): %v", d, err)
		}
		if len(ms) == 0 || len(ms) != Latest() {
			t.Fatalf("load(%v): %d migrations, Latest() = %d", d, len(ms), Latest())
		}
		for _, m := range ms {
			if strings.Contains(m.sql, "{{") {
				t.Errorf("%v %s: placeholder left", d, m.name)
			}
		}
	}
	if _, err := load(Dialect(0)); err == nil {
		t.Error("load of an unknown dialect succeeded")
	}
}

func TestUpIsIdempotent(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	for range 2 {
		if err := Up(ctx, db, SQLite); err != nil {
			t.Fatalf("Up: %v", err)
		}
		if v := version(t, db); v != Latest() {
			t.Fatalf("version %d, want %d", v, Latest())
		}
	}
	var rows int
	if err := db.QueryRow("SELECT COUNT(*) FROM revision").Scan(&rows); err != nil || rows != 1 {
		t.Errorf("revision rows = %d, %v; want the one row, inserted once", rows, err)
	}
}

func TestUpRejectsNewerDatabase(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	if err := Up(ctx, db, SQLite); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)"); err != nil {
		t.Fatal(err)
	}
	err := Up(ctx, db, SQLite)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Up on a newer database: err = %v, want a 'newer' error", err)
	}
}

// withFiles swaps in test migrations for the duration of a test.
func withFiles(t *testing.T, fsys fstest.MapFS) {
	t.Helper()
	old := files
	files = fsys
	t.Cleanup(func() { files = old })
}

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestUpIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	withFiles(t, fstest.MapFS{
		"0001_a.sql": file("CREATE TABLE a (id {{identity}}, b {{bytes}});"),
		"0002_b.sql": file("CREATE TABLE b (x INTEGER); INSERT INTO no_such_table VALUES (1);"),
	})
	err := Up(ctx, db, SQLite)
	if err == nil || !strings.Contains(err.Error(), "0002_b.sql") {
		t.Fatalf("Up with a broken migration: err = %v, want one naming 0002_b.sql", err)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('a', 'b', 'schema_migrations')").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d tables left behind by a failed Up, want none", n)
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	cases := map[string]fstest.MapFS{
		"gap":                 {"0001_a.sql": file("SELECT 1;"), "0003_c.sql": file("SELECT 1;")},
		"duplicate version":   {"0001_a.sql": file("SELECT 1;"), "0001_b.sql": file("SELECT 1;")},
		"not starting at one": {"0002_a.sql": file("SELECT 1;")},
		"bad name":            {"0001-a.sql": file("SELECT 1;")},
		"unknown placeholder": {"0001_a.sql": file("CREATE TABLE t (x {{json}});")},
	}
	for name, fsys := range cases {
		t.Run(name, func(t *testing.T) {
			withFiles(t, fsys)
			if _, err := load(SQLite); err == nil {
				t.Error("load succeeded, want an error")
			}
		})
	}
}
