package migrations

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/portcullis/portcullis/internal/store"

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

func TestDialectFiles(t *testing.T) {
	withFiles(t, fstest.MapFS{
		"0001_a.sql":          file("CREATE TABLE a (x INTEGER);"),
		"0001_a.sqlite.sql":   file("CREATE TABLE a_sqlite (x {{bytes}});"),
		"0001_a.postgres.sql": file("CREATE TABLE a_postgres (x {{bytes}});"),
		"0002_b.sql":          file("CREATE TABLE b (x INTEGER);"),
		"0002_b.postgres.sql": file("CREATE TABLE b_postgres (x INTEGER);"),
	})
	if Latest() != 2 {
		t.Errorf("Latest() = %d, want 2: dialect files are not versions", Latest())
	}
	ms, err := load(SQLite)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].dialectSQL != "CREATE TABLE a_sqlite (x BLOB);" || ms[1].dialectSQL != "" {
		t.Errorf("sqlite: %+v", ms)
	}
	ms, err = load(Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].dialectSQL != "CREATE TABLE a_postgres (x BYTEA);" || ms[1].dialectName != "0002_b.postgres.sql" {
		t.Errorf("postgres: %+v", ms)
	}

	db := memDB(t)
	if err := Up(context.Background(), db, SQLite); err != nil {
		t.Fatalf("Up: %v", err)
	}
	var names []string
	rows, err := db.Query("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'schema_migrations' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "a,a_sqlite,b" {
		t.Errorf("tables %v, want a, a_sqlite, b", names)
	}
}

func TestDialectFileErrors(t *testing.T) {
	cases := map[string]fstest.MapFS{
		"orphan":              {"0001_a.sql": file("SELECT 1;"), "0001_b.sqlite.sql": file("SELECT 1;")},
		"orphan of the other": {"0001_a.sql": file("SELECT 1;"), "0002_a.postgres.sql": file("SELECT 1;")},
		"unknown dialect":     {"0001_a.sql": file("SELECT 1;"), "0001_a.mysql.sql": file("SELECT 1;")},
		"bad placeholder":     {"0001_a.sql": file("SELECT 1;"), "0001_a.sqlite.sql": file("{{json}}")},
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

func TestDialectFileIsAllOrNothing(t *testing.T) {
	db := memDB(t)
	withFiles(t, fstest.MapFS{
		"0001_a.sql":        file("CREATE TABLE a (x INTEGER);"),
		"0001_a.sqlite.sql": file("INSERT INTO no_such_table VALUES (1);"),
	})
	err := Up(context.Background(), db, SQLite)
	if err == nil || !strings.Contains(err.Error(), "0001_a.sqlite.sql") {
		t.Fatalf("Up with a broken dialect file: err = %v, want one naming it", err)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('a', 'schema_migrations')").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d tables left behind, want none", n)
	}
}

// TestChainAuditBackfill checks the Go step of version 2: events written at
// version 1 (without hashes) are chained, as the verifier will recompute
// them from what the store reads back.
func TestChainAuditBackfill(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	v1, err := fs.ReadFile(embedded, "0001_initial.sql")
	if err != nil {
		t.Fatal(err)
	}
	withFiles(t, fstest.MapFS{"0001_initial.sql": &fstest.MapFile{Data: v1}})
	if err := Up(ctx, db, SQLite); err != nil {
		t.Fatal(err)
	}
	// More than one batch, with details as version 1 stored them.
	const n = chainBatch + 5
	for i := range n {
		var detail any
		switch i % 3 {
		case 1:
			detail = fmt.Sprintf(`{"i":%d,"z":{"b":[1,2.5,null],"a":"x"}}`, i)
		case 2:
			detail = `{"big":1152921504606846977}`
		}
		if _, err := db.Exec(`INSERT INTO audit_events (time, type, message, detail) VALUES ($1, $2, $3, $4)`,
			int64(1e18)+int64(i), "test.x", fmt.Sprint("m", i), detail); err != nil {
			t.Fatal(err)
		}
	}
	files = embedded
	if err := Up(ctx, db, SQLite); err != nil {
		t.Fatalf("Up to the latest: %v", err)
	}
	// Recompute as a store reads back.
	var evs []store.AuditEvent
	var hashes, prevs []string
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	after := int64(0)
	for {
		batch, err := readAuditBatch(ctx, tx, after)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		evs = append(evs, batch...)
		after = batch[len(batch)-1].ID
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query("SELECT prev_hash, hash FROM audit_events ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var p, h string
		if err := rows.Scan(&p, &h); err != nil {
			t.Fatal(err)
		}
		prevs, hashes = append(prevs, p), append(hashes, h)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(evs) != n || len(hashes) != n {
		t.Fatalf("%d events, %d hashes, want %d", len(evs), len(hashes), n)
	}
	prev := ""
	for i, ev := range evs {
		if prevs[i] != prev {
			t.Fatalf("event %d: prev_hash %q, want %q", ev.ID, prevs[i], prev)
		}
		if want := store.HashEvent(prev, ev); hashes[i] != want {
			t.Fatalf("event %d: hash %q, want %q", ev.ID, hashes[i], want)
		}
		prev = hashes[i]
	}
}
