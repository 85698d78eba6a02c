package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// auditLockKey is the advisory lock every gateway's AppendAudit takes
// ("portaud" in ASCII): a fixed number, apart from the migrations' key, that
// no other application on the database uses.
const auditLockKey = 0x706f7274617564

// AppendAudit stores an event and returns its ID, with the same contract
// as the SQLite store: ev.ID, ev.PrevHash and ev.Hash are ignored, a zero
// ev.Time is taken as now, Detail is normalized (store.NormalizeDetail) and
// text fields cleaned (store.CleanText) so that the event reads back
// exactly as it was hashed.
//
// Several gateways append to one trail, so the chain is made under a
// transaction-scoped advisory lock that every appender takes: read the
// newest event's hash, draw the next ID, insert the event with its hash,
// commit (which releases the lock). Nobody appends between the read and
// the insert, so the chain cannot fork; IDs are drawn only under the lock,
// so they grow in chain order; and the lock is released only once the
// event is visible, so the next appender reads it. IDs come from a
// counter row advanced in the same transaction (migration 0006), not the
// identity sequence: a transaction that fails gives its ID back, so IDs
// have no holes, and verification can take any gap for a removal.
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

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("append audit %s: begin: %w", ev.Type, err)
	}
	defer func() { _ = tx.Rollback() }()
	// The lock is its own statement: under READ COMMITTED each statement
	// reads a snapshot taken when it starts, and the read below must see
	// the event the previous lock holder committed.
	if err := lockAudit(ctx, tx); err != nil {
		return 0, fmt.Errorf("append audit %s: %w", ev.Type, err)
	}
	var prev sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&prev); err != nil &&
		!errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("append audit %s: read previous hash: %w", ev.Type, err)
	}
	if err := tx.QueryRowContext(ctx, `UPDATE audit_id_counter SET last = last + 1 RETURNING last`).Scan(&ev.ID); err != nil {
		return 0, fmt.Errorf("append audit %s: draw the next id: %w", ev.Type, err)
	}
	// The ID is known before the insert, so the row is written once, with
	// its hash (OVERRIDING SYSTEM VALUE: the identity column otherwise
	// refuses a given ID).
	hash := store.HashEventJSON(prev.String, ev, stored)
	if _, err := tx.ExecContext(ctx, `
INSERT INTO audit_events
    (id, time, type, outcome, user_name, source, target, account, session_id, policy, message, detail, prev_hash, hash)
OVERRIDING SYSTEM VALUE
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		ev.ID, nanos(ev.Time), ev.Type, ev.Outcome, ev.User, ev.Source, ev.Target, ev.Account,
		ev.SessionID, ev.Policy, ev.Message, detailCol, prev.String, hash); err != nil {
		return 0, fmt.Errorf("append audit %s: insert: %w", ev.Type, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("append audit %s: commit: %w", ev.Type, err)
	}
	return ev.ID, nil
}

// lockAudit takes the transaction-scoped advisory lock that serializes
// every change to the trail's end (append, retention) across gateways.
func lockAudit(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(auditLockKey)); err != nil {
		return fmt.Errorf("take the audit lock: %w", err)
	}
	return nil
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
// it removes them all. It returns how many it removed. Removing a prefix
// keeps what is left one unbroken chain even when event times are not in
// ID order (a gateway's clock stepped back, or two gateways' clocks
// disagree). An event appended while it runs is never removed: the
// statement sees the trail as it was when it started.
func (s *Store) DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `
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
// inclusive and Until exclusive; a Type ending in "." matches by prefix,
// case-sensitively and without wildcards. A Limit of zero or less means
// 1000.
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
			// starts_with rather than LIKE, where '_' and '%' are
			// wildcards.
			w.add("starts_with(type, $%d)", f.Type)
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

	rows, err := s.db.QueryContext(ctx, q, args...)
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
