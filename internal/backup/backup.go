// Package backup copies the gateway's database to a file and back, for
// both backends:
//
//   - SQLite: VACUUM INTO writes a consistent, compact copy while the
//     gateway runs (it reads one snapshot of the WAL database). Restore
//     checks the copy (integrity_check, a schema this binary knows), keeps
//     the database it replaces beside it, and swaps the file in; the
//     gateway must be stopped.
//   - PostgreSQL: pg_dump and pg_restore in their custom format, which is
//     what PostgreSQL operators already know and keep; restore runs in one
//     transaction, so a failed restore leaves the database as it was.
//
// Neither copy holds the master key, without which the sealed secrets in
// it (target keys, the user CA) cannot be opened: back it up apart.
package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	// The pure-Go SQLite driver, registered as "sqlite" (also used by
	// store/sqlite).
	_ "modernc.org/sqlite"

	"github.com/portcullis/portcullis/internal/store/migrations"
)

// Kind is the backend of a store URL.
type Kind int

// Backends.
const (
	SQLite Kind = iota + 1
	Postgres
)

// Parse splits a store setting ("sqlite:PATH", "postgres://...") into its
// backend and target (the file path, or the URL itself).
func Parse(storeURL string) (Kind, string, error) {
	switch {
	case strings.HasPrefix(storeURL, "sqlite:"):
		p := strings.TrimPrefix(storeURL, "sqlite:")
		if p == "" {
			return 0, "", fmt.Errorf("store %q: no file path after \"sqlite:\"", storeURL)
		}
		return SQLite, p, nil
	case strings.HasPrefix(storeURL, "postgres://"), strings.HasPrefix(storeURL, "postgresql://"):
		return Postgres, storeURL, nil
	}
	return 0, "", fmt.Errorf("store %q: want sqlite:PATH or a postgres:// URL", storeURL)
}

// Backup writes a copy of the store to out, which must not exist yet (a
// backup never overwrites another).
func Backup(ctx context.Context, storeURL, out string) error {
	kind, target, err := Parse(storeURL)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("backup: %s exists; choose a new file", out)
	}
	switch kind {
	case SQLite:
		return backupSQLite(ctx, target, out)
	default:
		return runTool(ctx, "pg_dump", "--format=custom", "--no-owner", "--file", out, "--dbname", target)
	}
}

// Restore replaces the store's content with the backup in. The gateway
// (every gateway, on a shared PostgreSQL) must be stopped. For SQLite the
// replaced database is kept as PATH.before-restore-TIME; its path is
// returned.
func Restore(ctx context.Context, storeURL, in string) (kept string, err error) {
	kind, target, err := Parse(storeURL)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(in); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	switch kind {
	case SQLite:
		return restoreSQLite(ctx, in, target)
	default:
		return "", runTool(ctx, "pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
			"--exit-on-error", "--dbname", target, in)
	}
}

func backupSQLite(ctx context.Context, dbPath, out string) error {
	if _, err := os.Stat(dbPath); err != nil {
		return fmt.Errorf("backup: database %w", err)
	}
	db, err := openFile(dbPath, true)
	if err != nil {
		return err
	}
	defer db.Close()
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	// The copy is private (0600) from its creation: it holds the same
	// sealed secrets as the database.
	old := umask(0o077)
	_, err = db.ExecContext(ctx, "VACUUM INTO ?", abs)
	umask(old)
	if err != nil {
		os.Remove(abs)
		return fmt.Errorf("backup: copy %s: %w", dbPath, err)
	}
	if _, err := checkSQLite(ctx, abs); err != nil {
		os.Remove(abs)
		return fmt.Errorf("backup: the copy does not check out: %w", err)
	}
	return nil
}

func restoreSQLite(ctx context.Context, in, dbPath string) (string, error) {
	version, err := checkSQLite(ctx, in)
	if err != nil {
		return "", fmt.Errorf("restore: %s: %w", in, err)
	}
	if version > migrations.Latest() {
		return "", fmt.Errorf("restore: %s has schema version %d, newer than this binary's %d: use a newer portcullis", in, version, migrations.Latest())
	}
	tmp := dbPath + ".restore.tmp"
	if err := copyFile(in, tmp); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("restore: %w", err)
	}
	kept := ""
	if _, err := os.Stat(dbPath); err == nil {
		kept = fmt.Sprintf("%s.before-restore-%s", dbPath, time.Now().UTC().Format("20060102T150405Z"))
		// A consistent copy of what is replaced, WAL included, kept
		// beside it: a restore is undone by restoring that.
		if err := backupSQLite(ctx, dbPath, kept); err != nil {
			os.Remove(tmp)
			return "", fmt.Errorf("restore: keep the current database: %w", err)
		}
	}
	// A WAL left beside the new file would be replayed into it: the
	// current database's WAL is in the kept copy, so it goes.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			os.Remove(tmp)
			return kept, fmt.Errorf("restore: %w", err)
		}
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		os.Remove(tmp)
		return kept, fmt.Errorf("restore: %w", err)
	}
	return kept, nil
}

// checkSQLite runs integrity_check on a database file and returns its
// schema version.
func checkSQLite(ctx context.Context, path string) (int, error) {
	db, err := openFile(path, true)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return 0, fmt.Errorf("not a readable SQLite database: %w", err)
	}
	if res != "ok" {
		return 0, fmt.Errorf("integrity check: %s", res)
	}
	var version int
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&version); err != nil {
		return 0, fmt.Errorf("not a Portcullis database (no schema_migrations): %w", err)
	}
	return version, nil
}

func openFile(path string, readOnly bool) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dsn := "file:" + abs + "?_pragma=busy_timeout(5000)"
	if readOnly {
		dsn += "&mode=ro"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// runTool runs a PostgreSQL client tool, with its own output shown on
// failure. A password in the URL goes to the tool through PGPASSWORD,
// not its command line, which every local user can read in ps.
func runTool(ctx context.Context, name string, args ...string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s is not installed (Debian: apt-get install postgresql-client): %w", name, err)
	}
	env := os.Environ()
	for i, a := range args {
		if i > 0 && args[i-1] == "--dbname" {
			u, err := url.Parse(a)
			if err != nil {
				return fmt.Errorf("%s: the PostgreSQL URL does not parse", name)
			}
			// libpq takes the password in the user part or as the
			// password parameter: neither may stay on the command line.
			var pw string
			if u.User != nil {
				if p, ok := u.User.Password(); ok {
					pw = p
					u.User = url.User(u.User.Username())
				}
			}
			q := u.Query()
			if p := q.Get("password"); p != "" {
				pw = p
				q.Del("password")
				u.RawQuery = q.Encode()
			}
			if pw != "" {
				env = append(env, "PGPASSWORD="+pw)
			}
			args[i] = u.String()
		}
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	// pg_dump writes the file under the process umask: the dump holds
	// the same hashes and sealed secrets as the database.
	old := umask(0o077)
	defer umask(old)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
