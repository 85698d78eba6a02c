package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequireSCRAM makes every role except the superuser log in over TCP with a
// SCRAM-SHA-256 password, as a database behind the gateway would: the
// superuser (what the URLs and Exec use) stays trusted. It rewrites
// pg_hba.conf, reloads, and returns once the new rules are in force.
func (p *Postgres) RequireSCRAM(t testing.TB) {
	t.Helper()
	hba := strings.Join([]string{
		"local all all trust",
		"host all " + postgresSuperuser + " 127.0.0.1/32 trust",
		"host all all 127.0.0.1/32 scram-sha-256",
		"host all all ::1/128 scram-sha-256",
		"",
	}, "\n")
	path := filepath.Join(p.dataDir(), "pg_hba.conf")
	// Writing over the file keeps its owner (the server's user).
	if err := os.WriteFile(path, []byte(hba), 0o600); err != nil {
		t.Fatalf("RequireSCRAM: %v", err)
	}
	p.Exec(t, "", "SELECT pg_reload_conf()")
	deadline := time.Now().Add(postgresReadyTimeout)
	for {
		// A role that does not exist is refused for its password once
		// SCRAM is in force, and for not existing while trust still is.
		db, err := sql.Open("pgx", fmt.Sprintf("postgres://probe@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", p.Port))
		if err != nil {
			t.Fatalf("RequireSCRAM: %v", err)
		}
		err = db.PingContext(context.Background())
		db.Close()
		if err != nil && strings.Contains(err.Error(), "password") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("RequireSCRAM: pg_hba.conf not in force after reload: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Exec runs statements as the superuser on database db ("" for the
// postgres database), failing the test on error.
func (p *Postgres) Exec(t testing.TB, db, statements string) {
	t.Helper()
	if db == "" {
		db = "postgres"
	}
	conn, err := sql.Open("pgx", p.dsn(db))
	if err != nil {
		t.Fatalf("Postgres.Exec: %v", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), postgresReadyTimeout)
	defer cancel()
	if _, err := conn.ExecContext(ctx, statements); err != nil {
		t.Fatalf("Postgres.Exec on %s: %v\n%s", db, err, statements)
	}
}

// Query returns the first column of the first row of a query run as the
// superuser on database db ("" for postgres).
func (p *Postgres) Query(t testing.TB, db, query string) (string, error) {
	t.Helper()
	if db == "" {
		db = "postgres"
	}
	conn, err := sql.Open("pgx", p.dsn(db))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), postgresReadyTimeout)
	defer cancel()
	var out sql.NullString
	err = conn.QueryRowContext(ctx, query).Scan(&out)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return out.String, err
}

// EnableTLS has the server offer TLS with the given certificate chain and
// key (PEM), for tests of clients that verify it; it returns once new
// connections may use it.
func (p *Postgres) EnableTLS(t testing.TB, certPEM, keyPEM []byte) {
	t.Helper()
	for name, data := range map[string][]byte{"server.crt": certPEM, "server.key": keyPEM} {
		path := filepath.Join(p.dataDir(), name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatalf("EnableTLS: %v", err)
		}
		if p.cred != nil {
			if err := os.Chown(path, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
				t.Fatalf("EnableTLS: %v", err)
			}
		}
	}
	p.Exec(t, "", "ALTER SYSTEM SET ssl = on")
	p.Exec(t, "", "SELECT pg_reload_conf()")
	deadline := time.Now().Add(postgresReadyTimeout)
	for {
		if on, err := p.Query(t, "", "SHOW ssl"); err == nil && on == "on" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("EnableTLS: ssl not on after reload\n%s", p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
