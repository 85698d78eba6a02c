// Package postgres is the store.Store for several gateways sharing one
// PostgreSQL database (high availability), through pgx's database/sql
// driver so that the schema migrations shared with the SQLite store run
// unchanged.
//
// Every gateway opens its own Store on the same database. What must not
// interleave between them is serialized in the database, never in Go:
// migrations and audit appends each take a transaction-scoped advisory
// lock, and every Apply takes the revision row's lock first. Every Apply
// is announced with NOTIFY, which WatchChanges (store.Notifier) hands to
// the other gateways, so they reload at once rather than at their next
// poll of Revision.
//
// The database must use the UTF8 encoding and a UTF-8 character type
// (LC_CTYPE such as C.UTF-8 or en_US.UTF-8, not C): full-text search
// relies on it to fold case and tell letters apart beyond ASCII. Open
// checks both.
package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/migrations"
	"github.com/portcullis/portcullis/internal/store/sqlstore"
)

// maxConns bounds each gateway's connections. PostgreSQL's default
// max_connections is 100, shared by every gateway and every other client
// of the server; the store's queries are short, so a few connections serve
// many sessions.
const maxConns = 16

// connMaxLifetime retires connections now and then, so that after a
// failover or a connection pooler change the pool moves to the new server
// instead of holding old connections forever.
const connMaxLifetime = 30 * time.Minute

// defaultLimit is the page size of a listing whose filter has no Limit.
const defaultLimit = 1000

// RevisionChannel is the LISTEN/NOTIFY channel on which every Apply
// announces, when it commits, the revision it made (as decimal text).
// WatchChanges listens on it.
const RevisionChannel = "portcullis_revision"

// Store is a store.Store kept in a PostgreSQL database. It is safe for
// concurrent use, and several Stores (several gateways) may share one
// database.
type Store struct {
	db  *sql.DB
	cfg *pgx.ConnConfig // for the connections WatchChanges holds outside the pool
	// ctx ends when the store is closed, and with it every watch.
	ctx    context.Context
	cancel context.CancelFunc
	// where names the database in errors: host, port and database, never
	// the password.
	where string

	// Access is the API keys, settings, passwords and console sessions,
	// shared with the SQLite store.
	sqlstore.Access
	// Checkpoints is the audit trail's signed checkpoints, its key and
	// retention, shared with the SQLite store.
	sqlstore.Checkpoints
	sqlstore.RecordingIndex
	sqlstore.JIT
	sqlstore.Reviews
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (postgres://USER[:PASSWORD]@HOST[:PORT]/DB?sslmode=...,
// or any connection string pgx accepts) and brings its schema to the
// latest version. Gateways starting together against a new database
// serialize on the migrations' advisory lock: one migrates, the others
// then find nothing to do.
func Open(ctx context.Context, url string) (*Store, error) {
	if strings.TrimSpace(url) == "" {
		// pgx would take an empty string as "localhost, from the
		// environment": a misconfiguration should not connect somewhere.
		return nil, errors.New("open postgres store: empty URL")
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx's error quotes the connection string with the password
		// masked.
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	s := &Store{
		db:    stdlib.OpenDB(*cfg.Copy()),
		cfg:   cfg,
		where: fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database),
	}
	s.Access = sqlstore.Access{R: s.db, W: s.db, ByteOrder: ` COLLATE "C"`}
	s.Checkpoints = sqlstore.Checkpoints{R: s.db, W: s.db, LockAudit: lockAudit}
	s.RecordingIndex = sqlstore.RecordingIndex{R: s.db, W: s.db}
	s.JIT = sqlstore.JIT{R: s.db, W: s.db}
	s.Reviews = sqlstore.Reviews{R: s.db, W: s.db}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.db.SetMaxOpenConns(maxConns)
	s.db.SetMaxIdleConns(maxConns)
	s.db.SetConnMaxLifetime(connMaxLifetime)
	if err := s.db.PingContext(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", s.where, err)
	}
	if err := s.checkEncoding(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", s.where, err)
	}
	if err := migrations.Up(ctx, s.db, migrations.Postgres); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", s.where, err)
	}
	return s, nil
}

// checkEncoding refuses a database whose text the store would mishandle:
// one not in UTF8 cannot hold every name and command line; one whose
// character type is C lets full-text search neither fold case nor split
// words beyond ASCII ("ÜBER" would not find "über"), silently.
func (s *Store) checkEncoding(ctx context.Context) error {
	var enc, ctype string
	if err := s.db.QueryRowContext(ctx,
		`SELECT current_setting('server_encoding'), current_setting('lc_ctype')`).Scan(&enc, &ctype); err != nil {
		return fmt.Errorf("read encoding: %w", err)
	}
	const create = "create it with CREATE DATABASE ... ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0"
	if enc != "UTF8" {
		return fmt.Errorf("database encoding is %s, want UTF8: %s", enc, create)
	}
	if c := strings.ToUpper(ctype); c == "C" || c == "POSIX" {
		return fmt.Errorf("database character type (LC_CTYPE) is %s, which leaves full-text search blind to letters beyond ASCII: %s", ctype, create)
	}
	return nil
}

// Close closes the connection pool and ends every WatchChanges. The store
// must not be used afterwards.
func (s *Store) Close() error {
	s.cancel()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close postgres store %s: %w", s.where, err)
	}
	return nil
}

// nanos is how a time is stored: UTC Unix nanoseconds in a BIGINT (see
// migration 0001 for why not timestamptz).
func nanos(t time.Time) int64 { return t.UTC().UnixNano() }

// fromNanos is the inverse of nanos; times come back in UTC.
func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// Apply writes every change in one transaction and bumps the revision once,
// with the same contract as the SQLite store: the store sets CreatedAt and
// UpdatedAt (all changes of one call share one timestamp), a non-nil empty
// Secret removes the stored secret, a record with an empty Kind or Name or
// a Spec that is not valid JSON is rejected before anything is written,
// and changes apply in order.
//
// The revision is bumped first: its row lock then serializes Apply calls
// from every gateway, so two batches touching the same records in
// different orders wait for each other instead of deadlocking. The commit
// notifies RevisionChannel.
func (s *Store) Apply(ctx context.Context, changes []store.Change) error {
	if len(changes) == 0 {
		return nil // nothing changes, so the revision does not move
	}
	for _, c := range changes {
		if err := check(c); err != nil {
			return err
		}
	}
	now := nanos(time.Now())
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("apply: begin: %w", err)
	}
	// Rollback after a successful Commit is a no-op returning ErrTxDone.
	defer func() { _ = tx.Rollback() }()

	var rev int64
	if err := tx.QueryRowContext(ctx,
		`UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value`).Scan(&rev); err != nil {
		return fmt.Errorf("apply: bump revision: %w", err)
	}
	for _, c := range changes {
		rec := c.Record
		if c.Delete {
			res, err := tx.ExecContext(ctx, `DELETE FROM resources WHERE kind = $1 AND name = $2`, rec.Kind, rec.Name)
			if err := mustAffect(res, err, fmt.Sprintf("apply delete %s %q", rec.Kind, rec.Name)); err != nil {
				return err
			}
			continue
		}
		// $4 says whether the record carries a secret at all; $5 is the
		// secret, NULL when empty. An insert stores $5 either way (NULL for
		// none); an update keeps the stored secret unless $4.
		var secret any
		if len(rec.Secret) > 0 {
			secret = rec.Secret
		}
		if c.Create {
			res, err := tx.ExecContext(ctx, `
INSERT INTO resources (kind, name, spec, secret, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $5)
ON CONFLICT (kind, name) DO NOTHING`, rec.Kind, rec.Name, string(rec.Spec), secret, now)
			if err != nil {
				return fmt.Errorf("apply create %s %q: %w", rec.Kind, rec.Name, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("apply create %s %q: %w", rec.Kind, rec.Name, err)
			} else if n == 0 {
				return fmt.Errorf("apply create %s %q: created meanwhile by another writer: %w", rec.Kind, rec.Name, store.ErrConflict)
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, `
INSERT INTO resources (kind, name, spec, secret, created_at, updated_at)
VALUES ($1, $2, $3, $5, $6, $6)
ON CONFLICT (kind, name) DO UPDATE SET
    spec = excluded.spec,
    secret = CASE WHEN $4 THEN excluded.secret ELSE resources.secret END,
    updated_at = excluded.updated_at`,
			rec.Kind, rec.Name, string(rec.Spec), rec.Secret != nil, secret, now); err != nil {
			return fmt.Errorf("apply put %s %q: %w", rec.Kind, rec.Name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, RevisionChannel, fmt.Sprint(rev)); err != nil {
		return fmt.Errorf("apply: notify revision %d: %w", rev, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("apply: commit: %w", err)
	}
	return nil
}

// check rejects a change the database would store but no reader could use.
func check(c store.Change) error {
	rec := c.Record
	op := "put"
	if c.Delete {
		op = "delete"
	}
	if rec.Kind == "" || rec.Name == "" {
		return fmt.Errorf("apply %s %s %q: kind and name are required", op, rec.Kind, rec.Name)
	}
	if !c.Delete && !json.Valid(rec.Spec) {
		return fmt.Errorf("apply put %s %q: spec is not valid JSON", rec.Kind, rec.Name)
	}
	return nil
}

// mustAffect turns an update or delete that touched no row into
// store.ErrNotFound.
func mustAffect(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// mustInsert turns an INSERT ... ON CONFLICT DO NOTHING that inserted no
// row into store.ErrConflict. Matching the row count rather than the
// driver's unique-violation error keeps the SQL the same as SQLite's.
func mustInsert(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: already exists: %w", what, store.ErrConflict)
	}
	return nil
}

// recordCols are the columns scanRecord reads, in order.
const recordCols = `kind, name, spec, secret, created_at, updated_at`

// Get returns one resource, store.ErrNotFound if absent.
func (s *Store) Get(ctx context.Context, kind, name string) (store.Record, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+recordCols+` FROM resources WHERE kind = $1 AND name = $2`, kind, name)
	rec, err := scanRecord(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Record{}, fmt.Errorf("get %s %q: %w", kind, name, store.ErrNotFound)
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("get %s %q: %w", kind, name, err)
	}
	return rec, nil
}

// List returns every resource of a kind ("" for all), ordered by kind then
// name in byte order whatever the database's collation (COLLATE "C"), as
// the SQLite store orders them.
func (s *Store) List(ctx context.Context, kind string) ([]store.Record, error) {
	q := `SELECT ` + recordCols + ` FROM resources`
	var args []any
	if kind != "" {
		q += ` WHERE kind = $1`
		args = append(args, kind)
	}
	q += ` ORDER BY kind COLLATE "C", name COLLATE "C"`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kindLabel(kind), err)
	}
	defer rows.Close()
	var recs []store.Record
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", kindLabel(kind), err)
		}
		recs = append(recs, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", kindLabel(kind), err)
	}
	return recs, nil
}

// kindLabel names a listed kind in errors.
func kindLabel(kind string) string {
	if kind == "" {
		return "all kinds"
	}
	return kind
}

func scanRecord(sc scanner) (store.Record, error) {
	var (
		rec              store.Record
		spec             string
		created, updated int64
	)
	if err := sc.Scan(&rec.Kind, &rec.Name, &spec, &rec.Secret, &created, &updated); err != nil {
		return store.Record{}, err
	}
	rec.Spec = json.RawMessage(spec)
	if len(rec.Secret) == 0 {
		rec.Secret = nil // NULL, and never an empty non-nil slice
	}
	rec.CreatedAt, rec.UpdatedAt = fromNanos(created), fromNanos(updated)
	return rec, nil
}

// Revision returns the number of Apply calls that changed something, made
// through any gateway sharing the database.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM revision WHERE id = 1`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read revision: %w", err)
	}
	return rev, nil
}
