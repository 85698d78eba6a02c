// Package sqlite is the embedded store.Store: one SQLite file in the data
// directory, through the pure-Go modernc.org/sqlite driver so the gateway
// builds without cgo.
//
// SQLite allows one writer at a time. Rather than let concurrent writers
// collide and retry on SQLITE_BUSY, the store keeps two connection pools on
// the same file: a write pool of exactly one connection, through which every
// write queues in Go, and a read pool of several read-only connections,
// which WAL mode lets run beside the writer on the last committed snapshot.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/migrations"
	"github.com/portcullis/portcullis/internal/store/sqlstore"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Queries use $1, $2, ... placeholders: modernc.org/sqlite binds them by
// position, and the PostgreSQL backend can then share their text.

// readConns is the size of the read pool. Reads are short (one row, one
// kind, one page of audit), so a few connections cover many sessions.
const readConns = 4

// busyTimeout is how long a connection waits for a lock another process
// holds (a second gateway process or the sqlite3 shell on the same file)
// before failing with SQLITE_BUSY. Within one process the write pool
// already serializes writers.
const busyTimeout = 5 * time.Second

// defaultLimit is the page size of a listing whose filter has no Limit.
const defaultLimit = 1000

// Store is a store.Store kept in one SQLite file. It is safe for concurrent
// use.
type Store struct {
	w *sql.DB // one connection: every write goes through it
	r *sql.DB // read-only connections

	// audit holds AppendAudit's statements, prepared once on the write
	// connection: parsing them on every event was a fifth of its CPU, and
	// every login and session start and end appends one.
	audit auditStmts

	// auditTail is the trail's newest hash and the ID the next event takes
	// as this Store's last append left them, so that the next append is
	// one statement that checks them instead of a transaction that reads
	// them first (two statements fewer: about 40 allocations and 2.5 KiB
	// per event, and an SSH login writes two). auditMu orders appends
	// through the cache.
	auditMu   sync.Mutex
	auditTail struct {
		prev  string
		next  int64
		known bool
	}

	// Access is the API keys, settings, passwords and console sessions,
	// shared with the PostgreSQL store.
	sqlstore.Access
	// Checkpoints is the audit trail's signed checkpoints, its key and
	// retention, shared with the PostgreSQL store.
	sqlstore.Checkpoints
	sqlstore.RecordingIndex
	sqlstore.JIT
	// Reviews is session reviews, access review campaigns and report
	// schedules, shared with the PostgreSQL store.
	sqlstore.Reviews
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path and brings its
// schema to the latest version. A new file is created with mode 0600: it
// holds sealed secrets and the audit trail. SQLite gives the -wal and -shm
// files beside it the same mode. The directory must exist.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		// Two pools on ":memory:" would be two unrelated databases.
		return nil, fmt.Errorf("open sqlite store: path %q: want a file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	// Create the file ourselves so that its mode is 0600 whatever the
	// umask; SQLite would create it 0644.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}

	w, err := openPool(ctx, abs, false)
	if err != nil {
		return nil, err
	}
	// The write connection runs the migrations, and also turns WAL on
	// before any reader opens (journal_mode is stored in the file).
	if err := migrations.Up(ctx, w, migrations.SQLite); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	r, err := openPool(ctx, abs, true)
	if err != nil {
		_ = w.Close()
		return nil, err
	}
	st := &Store{w: w, r: r, Access: sqlstore.Access{R: r, W: w}, Checkpoints: sqlstore.Checkpoints{R: r, W: w},
		RecordingIndex: sqlstore.RecordingIndex{R: r, W: w}, JIT: sqlstore.JIT{R: r, W: w},
		Reviews: sqlstore.Reviews{R: r, W: w}}
	if err := st.audit.prepare(ctx, w); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	return st, nil
}

// auditStmts are the statements of one AppendAudit.
type auditStmts struct {
	prev, insert, insertAfter *sql.Stmt
}

func (a *auditStmts) prepare(ctx context.Context, w *sql.DB) error {
	for _, p := range []struct {
		stmt **sql.Stmt
		text string
	}{
		// The newest event's hash (none: '') and the ID the next insert
		// takes: AUTOINCREMENT's counter plus one, so that IDs are never
		// reused even after retention deleted the newest events.
		{&a.prev, `
SELECT COALESCE((SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1), ''),
       COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'), 0) + 1`},
		{&a.insert, `
INSERT INTO audit_events
    (id, time, type, outcome, user_name, source, target, account, session_id, policy, message, detail, prev_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`},
		// insert, only if the newest hash is still $13 and the next ID
		// still $1: one statement is one write transaction, so no other
		// writer can append between the check and the insert.
		{&a.insertAfter, `
INSERT INTO audit_events
    (id, time, type, outcome, user_name, source, target, account, session_id, policy, message, detail, prev_hash, hash)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
WHERE COALESCE((SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1), '') = $13
  AND COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'), 0) + 1 = $1`},
	} {
		st, err := w.PrepareContext(ctx, p.text)
		if err != nil {
			return fmt.Errorf("prepare audit statements: %w", err)
		}
		*p.stmt = st
	}
	return nil
}

func (a *auditStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{a.prev, a.insert, a.insertAfter} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// openPool opens the write pool (one connection) or the read pool.
func openPool(ctx context.Context, path string, readOnly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "NORMAL") // durable enough with WAL: a power cut may lose the last commits, never corrupt
	if readOnly {
		q.Set("_query_only", "on")
	} else {
		// 16 KiB pages for a new file (an existing one keeps its own
		// until VACUUM): index chunks of one to two KiB fill them far
		// better than 4 KiB pages, which made the search index a tenth
		// smaller (1.65x -> 1.47x the terminal output, BenchmarkCatchUp).
		// Set before WAL: the page size of a WAL database is fixed.
		q.Set("_pragma", "page_size(16384)")
		// Statement journals in memory: with 16 KiB pages the one an
		// audit append needs outgrew the in-memory default and became a
		// temporary file opened, written and removed on every event
		// (a third of the append's system calls).
		q.Add("_pragma", "temp_store(memory)")
		q.Set("_journal_mode", "WAL")
		// BEGIN IMMEDIATE takes the write lock at the start of the
		// transaction, so a transaction that reads before it writes waits
		// on busy_timeout rather than failing when another process wrote
		// meanwhile.
		q.Set("_txlock", "immediate")
	}
	// A file: URI, so that a path holding '?', '#' or '%' is escaped rather
	// than cut short; SQLite decodes it.
	dsn := (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if readOnly {
		db.SetMaxOpenConns(readConns)
		db.SetMaxIdleConns(readConns)
	} else {
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
	}
	// Connections are cheap to keep and lose their page cache when closed.
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	return db, nil
}

// Close closes both pools. The store must not be used afterwards.
func (s *Store) Close() error {
	return errors.Join(s.audit.close(), s.r.Close(), s.w.Close())
}

// nanos is how a time is stored: UTC Unix nanoseconds.
func nanos(t time.Time) int64 { return t.UTC().UnixNano() }

// fromNanos is the inverse of nanos; times come back in UTC.
func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// Apply writes every change in one transaction and bumps the revision once.
// Beyond the store.Store contract: the store sets CreatedAt and UpdatedAt
// itself (the values in the records are ignored), all changes of one call
// share one timestamp, a non-nil empty Secret removes the stored secret, and
// a record whose Kind or Name is empty or whose Spec is not valid JSON is
// rejected before anything is written. Changes apply in order, so a delete
// followed by a put of the same name recreates it.
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
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("apply: begin: %w", err)
	}
	// Rollback after a successful Commit is a no-op returning ErrTxDone.
	defer func() { _ = tx.Rollback() }()

	for _, c := range changes {
		rec := c.Record
		if c.Delete {
			res, err := tx.ExecContext(ctx, `DELETE FROM resources WHERE kind = $1 AND name = $2`, rec.Kind, rec.Name)
			if err != nil {
				return fmt.Errorf("apply delete %s %q: %w", rec.Kind, rec.Name, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("apply delete %s %q: %w", rec.Kind, rec.Name, err)
			}
			if n == 0 {
				return fmt.Errorf("apply delete %s %q: %w", rec.Kind, rec.Name, store.ErrNotFound)
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
	if _, err := tx.ExecContext(ctx, `UPDATE revision SET value = value + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("apply: bump revision: %w", err)
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

// Get returns one resource, store.ErrNotFound if absent.
func (s *Store) Get(ctx context.Context, kind, name string) (store.Record, error) {
	row := s.r.QueryRowContext(ctx, `
SELECT kind, name, spec, secret, created_at, updated_at
FROM resources WHERE kind = $1 AND name = $2`, kind, name)
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
// name in byte order (SQLite's BINARY collation).
func (s *Store) List(ctx context.Context, kind string) ([]store.Record, error) {
	q := `SELECT kind, name, spec, secret, created_at, updated_at FROM resources`
	var args []any
	if kind != "" {
		q += ` WHERE kind = $1`
		args = append(args, kind)
	}
	q += ` ORDER BY kind, name`
	rows, err := s.r.QueryContext(ctx, q, args...)
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

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

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

// Revision returns the number of Apply calls that changed something.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	if err := s.r.QueryRowContext(ctx, `SELECT value FROM revision WHERE id = 1`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read revision: %w", err)
	}
	return rev, nil
}

// AppendAudit stores an event and returns its ID; ev.ID, ev.PrevHash and
// ev.Hash are ignored. A zero ev.Time is taken as now. Detail is stored as
// JSON, so it must marshal; it is normalized first (store.NormalizeDetail)
// and text fields cleaned (store.CleanText), so that the event reads back
// exactly as it was hashed.
//
// The event is chained inside its write transaction: read the newest
// event's hash and the ID the event takes (AUTOINCREMENT's next), hash the
// event with that ID and insert it with its hash, in one write of the row
// (an insert and then an update of the hash wrote a large row twice). The
// transaction holds SQLite's write lock from its start (BEGIN IMMEDIATE),
// so no other writer, in this process or another, can append between the
// read and the insert: the chain cannot fork, and the ID read is the one
// the table would have assigned.
func (s *Store) AppendAudit(ctx context.Context, ev store.AuditEvent) (int64, error) {
	if ev.Type == "" {
		return 0, errors.New("append audit: event type is required")
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev = cleanEvent(ev)
	ev.Time = fromNanos(nanos(ev.Time)) // as it reads back
	detail, stored, err := store.NormalizeDetail(ev.Detail)
	if err != nil {
		return 0, fmt.Errorf("append audit %s: encode detail: %w", ev.Type, err)
	}
	ev.Detail = detail
	var detailCol any // NULL when empty
	if stored != nil {
		detailCol = string(stored)
	}

	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	if t := &s.auditTail; t.known {
		t.known = false // until this append is known to have succeeded
		ev.ID = t.next
		hash := store.HashEventJSON(t.prev, ev, stored)
		res, err := s.audit.insertAfter.ExecContext(ctx, ev.ID,
			nanos(ev.Time), ev.Type, ev.Outcome, ev.User, ev.Source, ev.Target, ev.Account,
			ev.SessionID, ev.Policy, ev.Message, detailCol, t.prev, hash)
		// A failed statement inserted nothing (it is its own
		// transaction): the append is tried again below the old way,
		// under BEGIN IMMEDIATE, which also covers a WAL snapshot that
		// another process's append made stale (SQLITE_BUSY_SNAPSHOT,
		// which busy_timeout does not retry).
		if err == nil {
			if n, err := res.RowsAffected(); err == nil && n == 1 {
				t.prev, t.next, t.known = hash, ev.ID+1, true
				return ev.ID, nil
			}
		}
		// The trail changed since (retention removed its newest events,
		// or another process appended): chain to what it is now.
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("append audit %s: begin: %w", ev.Type, err)
	}
	defer func() { _ = tx.Rollback() }()
	var prev string
	if err := tx.StmtContext(ctx, s.audit.prev).QueryRowContext(ctx).Scan(&prev, &ev.ID); err != nil {
		return 0, fmt.Errorf("append audit %s: read previous hash: %w", ev.Type, err)
	}
	hash := store.HashEventJSON(prev, ev, stored)
	_, err = tx.StmtContext(ctx, s.audit.insert).ExecContext(ctx, ev.ID,
		nanos(ev.Time), ev.Type, ev.Outcome, ev.User, ev.Source, ev.Target, ev.Account,
		ev.SessionID, ev.Policy, ev.Message, detailCol, prev, hash)
	if err != nil {
		return 0, fmt.Errorf("append audit %s: insert: %w", ev.Type, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("append audit %s: commit: %w", ev.Type, err)
	}
	s.auditTail.prev, s.auditTail.next, s.auditTail.known = hash, ev.ID+1, true
	return ev.ID, nil
}

// cleanEvent passes an event's text fields through store.CleanText.
func cleanEvent(ev store.AuditEvent) store.AuditEvent {
	for _, p := range []*string{&ev.Type, &ev.Outcome, &ev.User, &ev.Source, &ev.Target, &ev.Account,
		&ev.SessionID, &ev.Policy, &ev.Message} {
		*p = store.CleanText(*p)
	}
	return ev
}

// DeleteAuditBefore removes the oldest events, up to (not including) the
// first event, in ID order, whose time is at or after t; with no such event
// it removes them all. It returns how many it removed. Removing a prefix of
// the trail rather than every event older than t keeps what is left one
// unbroken chain even when event times are not in ID order (a clock stepped
// back): an older event after a newer one is kept until everything before
// it goes.
func (s *Store) DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `
DELETE FROM audit_events WHERE id < COALESCE(
    (SELECT id FROM audit_events WHERE time >= $1 ORDER BY id LIMIT 1),
    (SELECT MAX(id) + 1 FROM audit_events))`, nanos(t))
	if err != nil {
		return 0, fmt.Errorf("delete audit before %v: %w", t, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete audit before %v: %w", t, err)
	}
	return n, nil
}

// ListAudit returns events matching f in the order they were appended
// (ascending ID, which is oldest first), or newest first with f.Newest, with their hashes. Since is
// inclusive and Until exclusive. A Limit of zero or less means 1000.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var w filter
	if !f.Since.IsZero() {
		w.add("time >= $%d", nanos(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("time < $%d", nanos(f.Until))
	}
	if f.Type != "" {
		if strings.HasSuffix(f.Type, ".") {
			// substr rather than LIKE: SQLite's LIKE ignores ASCII case
			// and treats '_' as a wildcard. substr counts characters in
			// both SQLite and PostgreSQL.
			w.add("substr(type, 1, $%d) = $%d", int64(utf8.RuneCountInString(f.Type)), f.Type)
		} else {
			w.add("type = $%d", f.Type)
		}
	}
	if f.User != "" {
		w.add("user_name = $%d", f.User)
	}
	if f.Target != "" {
		w.add("target = $%d", f.Target)
	}
	if f.SessionID != "" {
		w.add("session_id = $%d", f.SessionID)
	}
	if f.AfterID > 0 {
		w.add("id > $%d", f.AfterID)
	}
	if f.BeforeID > 0 {
		w.add("id < $%d", f.BeforeID)
	}
	order := "id"
	if f.Newest {
		order = "id DESC"
	}
	q, args := w.query(`SELECT id, time, type, outcome, user_name, source, target, account, session_id, policy, message, detail,
    prev_hash, hash
FROM audit_events`, order, f.Limit)

	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var evs []store.AuditEvent
	for rows.Next() {
		var (
			ev     store.AuditEvent
			t      int64
			detail sql.NullString
		)
		if err := rows.Scan(&ev.ID, &t, &ev.Type, &ev.Outcome, &ev.User, &ev.Source, &ev.Target,
			&ev.Account, &ev.SessionID, &ev.Policy, &ev.Message, &detail, &ev.PrevHash, &ev.Hash); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		ev.Time = fromNanos(t)
		if detail.Valid {
			if err := json.Unmarshal([]byte(detail.String), &ev.Detail); err != nil {
				return nil, fmt.Errorf("list audit: event %d: decode detail: %w", ev.ID, err)
			}
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return evs, nil
}

// HostKey returns the key recorded for target, store.ErrNotFound if none.
func (s *Store) HostKey(ctx context.Context, target string) (store.HostKey, error) {
	hk := store.HostKey{Target: target}
	var seen int64
	err := s.r.QueryRowContext(ctx, `SELECT key, first_seen FROM host_keys WHERE target = $1`, target).Scan(&hk.Key, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return store.HostKey{}, fmt.Errorf("host key %q: %w", target, store.ErrNotFound)
	}
	if err != nil {
		return store.HostKey{}, fmt.Errorf("host key %q: %w", target, err)
	}
	hk.FirstSeen = fromNanos(seen)
	return hk, nil
}

// RecordHostKey stores a first-use key, store.ErrConflict if target already
// has one (the stored key is left alone). A zero FirstSeen is taken as now.
func (s *Store) RecordHostKey(ctx context.Context, hk store.HostKey) error {
	if hk.Target == "" || hk.Key == "" {
		return fmt.Errorf("record host key %q: target and key are required", hk.Target)
	}
	if hk.FirstSeen.IsZero() {
		hk.FirstSeen = time.Now()
	}
	// ON CONFLICT DO NOTHING rather than matching the driver's constraint
	// error: the outcome is then a row count, the same in every database.
	res, err := s.w.ExecContext(ctx, `
INSERT INTO host_keys (target, key, first_seen) VALUES ($1, $2, $3)
ON CONFLICT (target) DO NOTHING`, hk.Target, hk.Key, nanos(hk.FirstSeen))
	if err != nil {
		return fmt.Errorf("record host key %q: %w", hk.Target, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("record host key %q: %w", hk.Target, err)
	}
	if n == 0 {
		return fmt.Errorf("record host key %q: already recorded: %w", hk.Target, store.ErrConflict)
	}
	return nil
}

// ForgetHostKey removes the key learned for target, store.ErrNotFound if
// there is none.
func (s *Store) ForgetHostKey(ctx context.Context, target string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM host_keys WHERE target = $1`, target)
	if err != nil {
		return fmt.Errorf("forget host key %q: %w", target, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("forget host key %q: %w", target, err)
	}
	if n == 0 {
		return fmt.Errorf("forget host key %q: %w", target, store.ErrNotFound)
	}
	return nil
}
