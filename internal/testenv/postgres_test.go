package testenv

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"
)

func TestNewestVersion(t *testing.T) {
	p := func(v string) string { return "/usr/lib/postgresql/" + v + "/bin/postgres" }
	cases := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{p("15")}, p("15")},
		{[]string{p("9.6"), p("15"), p("10")}, p("15")},
		{[]string{p("16"), p("9.6")}, p("16")},
		{[]string{p("beta"), p("13")}, p("13")},
		{[]string{p("beta")}, ""},
	}
	for _, c := range cases {
		if got := newestVersion(c.in); got != c.want {
			t.Errorf("newestVersion(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestPostgres starts a server, writes through its URL, checks that
// NewDatabase is empty and separate, and that data survives Stop and
// Start on the same URL.
func TestPostgres(t *testing.T) {
	pg := StartPostgres(t)
	if !strings.HasPrefix(pg.URL, "postgres://postgres@127.0.0.1:") {
		t.Errorf("URL %q, want one on 127.0.0.1 as postgres", pg.URL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sql.Open("pgx", pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('kept')`); err != nil {
		t.Fatal(err)
	}
	var ctype string
	if err := db.QueryRowContext(ctx, `SHOW lc_ctype`).Scan(&ctype); err != nil || ctype == "C" {
		t.Errorf("lc_ctype = %q, %v; want a UTF-8 one, which full-text search needs", ctype, err)
	}

	other := pg.NewDatabase(t)
	if other == pg.URL {
		t.Fatalf("NewDatabase returned the server's first database %s", other)
	}
	odb, err := sql.Open("pgx", other)
	if err != nil {
		t.Fatal(err)
	}
	defer odb.Close()
	var n int
	if err := odb.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_tables WHERE tablename = 't'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("new database: %d tables named t, %v; want an empty database", n, err)
	}

	pg.Stop(t)
	if err := db.PingContext(ctx); err == nil {
		t.Error("Ping succeeded while the server was stopped")
	}
	pg.Start(t)
	var v string
	if err := db.QueryRowContext(ctx, `SELECT v FROM t`).Scan(&v); err != nil || v != "kept" {
		t.Errorf("after Stop and Start: %q, %v; want the row written before", v, err)
	}
	if !strings.Contains(pg.Log(), "ready to accept connections") {
		t.Errorf("Log() = %q, want the server's log", pg.Log())
	}
}
