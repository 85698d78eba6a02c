package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:secret@db:5432/app", "postgres://u:xxxxx@db:5432/app"},
		{"postgres://db/app?password=secret&sslmode=require", "postgres://db/app?password=xxxxx&sslmode=require"},
		{"host=db user=u password=secret dbname=app", "host=db user=u password=xxxxx dbname=app"},
		{"host=db password = 'se cr\\'et' dbname=app", "host=db password = xxxxx dbname=app"},
		{"postgres://%zz", "(unparseable connection string)"},
	} {
		got := redactDSN(tc.in)
		if got != tc.want {
			t.Errorf("redactDSN(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, "cr") && strings.Contains(tc.in, "cr\\'") {
			t.Errorf("redactDSN(%q) leaks the password: %q", tc.in, got)
		}
	}
}

// A store that cannot be opened is one error naming the store and the
// cause, never a panic (a typed nil in the Store interface once made
// close() panic).
func TestStoreThatCannotBeOpenedIsAnError(t *testing.T) {
	t.Run("sqlite path is a directory", func(t *testing.T) {
		cfg := testConfig(t)
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, "portcullis.db"), 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := New(context.Background(), cfg, quietLog())
		if err == nil || !strings.Contains(err.Error(), "open store (SQLite") {
			t.Fatalf("New = %v, want an open store error naming SQLite", err)
		}
	})
	t.Run("postgres unreachable", func(t *testing.T) {
		cfg := testConfig(t)
		// Port 1 on loopback: nothing listens, the dial is refused at once.
		cfg.Store = "postgres://portcullis:hunter2hunter2@127.0.0.1:1/app?sslmode=disable&connect_timeout=2"
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, err := New(ctx, cfg, quietLog())
		if err == nil || !strings.Contains(err.Error(), "open store (PostgreSQL") {
			t.Fatalf("New = %v, want an open store error naming PostgreSQL", err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("the error leaks the password: %v", err)
		}
	})
}
