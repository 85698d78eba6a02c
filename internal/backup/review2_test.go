package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/store/postgres"
	"github.com/portcullis/portcullis/internal/testenv"
)

// TestReview2PostgresBackupIsPrivate: the SQLite backup is created 0600
// (umask 077 around VACUUM INTO), but pg_dump writes its file under the
// process umask, 0644 with the usual 022: every local user can read the
// dump, which holds password hashes, API key hashes, console session
// hashes, sealed account keys and TOTP seeds.
func TestReview2PostgresBackupIsPrivate(t *testing.T) {
	testenv.RequireRoot(t)
	pg := testenv.StartPostgres(t)
	url := pg.NewDatabase(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	put(t, st, "alice")
	st.Close()
	out := filepath.Join(t.TempDir(), "backup.dump")
	if err := Backup(ctx, url, out); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("PostgreSQL backup file mode %04o, want 0600 like the SQLite backup", perm)
	}
}

// TestReview2PasswordNotOnCommandLine: runTool moves a password given as
// USER:PASSWORD@ into PGPASSWORD, but libpq (and pgx, which the gateway
// uses) also take it as a URI parameter, ?password=..., which stays in the
// argv of pg_dump and pg_restore where any local user reads it in ps.
func TestReview2PasswordNotOnCommandLine(t *testing.T) {
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + "\nexit 0\n"
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		if err := os.WriteFile(filepath.Join(dir, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	const secret = "s3cretPassw0rd"
	ctx := context.Background()
	for _, url := range []string{
		"postgres://gw@db.example:5432/portcullis?password=" + secret + "&sslmode=require",
		"postgres://gw:" + secret + "@db.example:5432/portcullis",
	} {
		os.Remove(argsFile)
		out := filepath.Join(t.TempDir(), "b.dump")
		if err := Backup(ctx, url, out); err != nil {
			t.Fatalf("Backup(%s): %v", url, err)
		}
		args, err := os.ReadFile(argsFile)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(args), secret) {
			t.Errorf("pg_dump's command line holds the password (store %s):\n%s", url, args)
		}
	}
}
