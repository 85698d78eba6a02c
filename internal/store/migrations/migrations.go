// Package migrations holds the versioned schema of the gateway's database,
// one embedded SQL file per version, and applies the versions a database
// lacks. The SQLite and PostgreSQL backends run the same files, so that a
// schema change is written once and both backends stay alike.
//
// The files are plain SQL with two placeholders for the only things the two
// databases spell differently: {{identity}} (an auto-assigned, never reused
// 64-bit primary key) and {{bytes}} (a binary column). Statements take
// parameters as $1, $2, ..., which both modernc.org/sqlite and pgx accept.
//
// What cannot be written once (full-text search: an FTS5 virtual table on
// SQLite, a tsvector column on PostgreSQL) goes in a dialect file beside the
// version's portable file: NNNN_words.sqlite.sql or NNNN_words.postgres.sql,
// with the same NNNN_words stem. It runs right after the portable file, in
// the same transaction, and only for its dialect. A version may also have a
// Go step (see steps), for data changes SQL cannot express portably; it runs
// after the version's SQL, in the same transaction too.
//
// Why not github.com/pressly/goose: goose v3.29.0 requires
// modernc.org/libc v1.78.0, and minimal version selection would then lift
// libc above v1.77.1, the exact version modernc.org/sqlite v1.60.1 was
// generated against (modernc documents that pairing as fragile; see
// "Fragile modernc.org/libc dependency" in the modernc.org/sqlite docs).
// goose's go.mod also brings some ninety modules (ClickHouse, MSSQL, YDB,
// Docker clients) into the module graph, for what is here some eighty lines:
// a schema_migrations table and a loop.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed *.sql
var embedded embed.FS

// files is what load reads: the embedded files, or a test's stand-in.
var files fs.FS = embedded

// Dialect selects how the placeholders in the SQL files are spelled and how
// concurrent migrators are kept apart.
type Dialect int

// The dialects the gateway's stores use.
const (
	// SQLite is modernc.org/sqlite. Open the database with immediate
	// transactions (DSN _txlock=immediate) so that two processes migrating
	// one file serialize on the write lock instead of failing with
	// SQLITE_BUSY when the reader upgrades.
	SQLite Dialect = iota + 1
	// Postgres is PostgreSQL through pgx's database/sql driver. Several
	// gateways may start at once against one database; they serialize on a
	// transaction-scoped advisory lock.
	Postgres
)

// String names the dialect in errors.
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return "dialect(" + strconv.Itoa(int(d)) + ")"
}

// replacer returns what the dialect substitutes for the placeholders.
func (d Dialect) replacer() (*strings.Replacer, error) {
	switch d {
	case SQLite:
		// AUTOINCREMENT, unlike a plain INTEGER PRIMARY KEY, never hands out
		// an id again after the largest row is deleted.
		return strings.NewReplacer(
			"{{identity}}", "INTEGER PRIMARY KEY AUTOINCREMENT",
			"{{bytes}}", "BLOB",
		), nil
	case Postgres:
		return strings.NewReplacer(
			"{{identity}}", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
			"{{bytes}}", "BYTEA",
		), nil
	}
	return nil, fmt.Errorf("migrations: unknown %v", d)
}

// advisoryLockKey is the PostgreSQL advisory lock migrators take: any fixed
// number no other application on the database uses ("portcul" in ASCII).
const advisoryLockKey = 0x706f727463756c

// migration is one versioned schema step.
type migration struct {
	version int
	name    string // portable file name, for errors and the schema_migrations row
	sql     string // with placeholders already replaced
	// dialectName and dialectSQL are the version's file for the dialect
	// being migrated, if it has one.
	dialectName string
	dialectSQL  string
	// step is the version's Go step, if any.
	step func(ctx context.Context, tx *sql.Tx, d Dialect) error
}

// steps are the Go steps, by the stem of their version's portable file
// (keyed by name rather than version, so that a test's stand-in files never
// run them).
var steps = map[string]func(ctx context.Context, tx *sql.Tx, d Dialect) error{
	"0002_recordings_commands_audit_chain": chainAudit,
}

// fileName matches a migration file: a four-digit version, a stem of lower
// case words, and for a dialect file the dialect's name.
var fileName = regexp.MustCompile(`^(([0-9]{4})_[a-z0-9_]+)(?:\.(sqlite|postgres))?\.sql$`)

// load reads the embedded files for dialect d, ordered by version. Versions
// must run 1, 2, 3, ... without gaps, so that a file lost in a merge fails
// every test instead of silently skipping a step. A dialect file must
// extend a portable file of the same stem; dialect files of the other
// dialect are checked the same way but not returned.
func load(d Dialect) ([]migration, error) {
	r, err := d.replacer()
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrations: list files: %w", err)
	}
	sort.Strings(names)
	read := func(name string) (string, error) {
		b, err := fs.ReadFile(files, name)
		if err != nil {
			return "", fmt.Errorf("migrations: read %s: %w", name, err)
		}
		text := r.Replace(string(b))
		if i := strings.Index(text, "{{"); i >= 0 {
			end := min(i+20, len(text))
			return "", fmt.Errorf("migrations: file %s: unknown placeholder near %q", name, text[i:end])
		}
		return text, nil
	}
	var (
		ms      []migration
		byStem  = map[string]int{} // stem -> index in ms
		dialect []string           // dialect files, attached once every portable file is known
	)
	for _, name := range names {
		m := fileName.FindStringSubmatch(path.Base(name))
		if m == nil {
			return nil, fmt.Errorf("migrations: file %s: name is not NNNN_words.sql or NNNN_words.{sqlite,postgres}.sql", name)
		}
		if m[3] != "" {
			dialect = append(dialect, name)
			continue
		}
		v, _ := strconv.Atoi(m[2]) // four digits: cannot fail
		if want := len(ms) + 1; v != want {
			return nil, fmt.Errorf("migrations: file %s: version %d, want %d (versions run 1, 2, ... without gaps)", name, v, want)
		}
		text, err := read(name)
		if err != nil {
			return nil, err
		}
		byStem[m[1]] = len(ms)
		ms = append(ms, migration{version: v, name: name, sql: text, step: steps[m[1]]})
	}
	for _, name := range dialect {
		m := fileName.FindStringSubmatch(path.Base(name))
		i, ok := byStem[m[1]]
		if !ok {
			return nil, fmt.Errorf("migrations: file %s: no portable file %s.sql for it to extend", name, m[1])
		}
		if m[3] != d.String() {
			continue
		}
		text, err := read(name)
		if err != nil {
			return nil, err
		}
		ms[i].dialectName, ms[i].dialectSQL = name, text
	}
	return ms, nil
}

// Latest is the schema version the embedded files lead to. It counts the
// portable files: load (and so Up, and this package's tests) rejects a set
// whose versions do not run 1, 2, ..., n.
func Latest() int {
	names, _ := fs.Glob(files, "*.sql") // the pattern is valid: no error
	n := 0
	for _, name := range names {
		if m := fileName.FindStringSubmatch(path.Base(name)); m != nil && m[3] == "" {
			n++
		}
	}
	return n
}

// Up brings the database to the latest version: it applies, in one
// transaction, every migration (its SQL, its dialect's SQL, its Go step)
// newer than the version recorded in the schema_migrations table, and
// records each. Either all pending migrations
// are applied or none is (both databases roll back DDL with the
// transaction). A database newer than this binary is an error rather than
// something to run against: an older gateway would misread the new schema.
func Up(ctx context.Context, db *sql.DB, d Dialect) error {
	ms, err := load(d)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrations: begin: %w", err)
	}
	// Rollback after a successful Commit is a no-op returning ErrTxDone.
	defer func() { _ = tx.Rollback() }()

	if d == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(advisoryLockKey)); err != nil {
			return fmt.Errorf("migrations: take advisory lock: %w", err)
		}
	}
	// Created inside the locked transaction: PostgreSQL's CREATE TABLE IF
	// NOT EXISTS is not safe against a concurrent creator.
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT NOT NULL PRIMARY KEY,
    name       TEXT   NOT NULL,
    applied_at BIGINT NOT NULL
)`); err != nil {
		return fmt.Errorf("migrations: create schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("migrations: read current version: %w", err)
	}
	if current > len(ms) {
		return fmt.Errorf("migrations: database schema is version %d, newer than this binary's %d: run a newer gateway", current, len(ms))
	}
	if current == len(ms) {
		return nil
	}
	now := time.Now().UTC().UnixNano()
	for _, m := range ms[current:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migrations: apply %s: %w", m.name, err)
		}
		if m.dialectSQL != "" {
			if _, err := tx.ExecContext(ctx, m.dialectSQL); err != nil {
				return fmt.Errorf("migrations: apply %s: %w", m.dialectName, err)
			}
		}
		if m.step != nil {
			if err := m.step(ctx, tx, d); err != nil {
				return fmt.Errorf("migrations: apply %s: Go step: %w", m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
			int64(m.version), m.name, now); err != nil {
			return fmt.Errorf("migrations: record %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrations: commit: %w", err)
	}
	return nil
}
