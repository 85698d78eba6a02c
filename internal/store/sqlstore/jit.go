package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// JIT implements the store.Store methods for just-in-time access requests,
// their history and the webhook's single-use links.
type JIT struct {
	// R reads and W writes, as in Access.
	R, W *sql.DB
}

const jitColumns = `id, requester, policy, target, account, duration_ns, reason, state, approval, grant_name, decided_by, created_at, decided_at, expires_at`

func scanJIT(sc scanner) (store.JITRequest, error) {
	var (
		r                store.JITRequest
		dur, created     int64
		decided, expires sql.NullInt64
	)
	if err := sc.Scan(&r.ID, &r.Requester, &r.Policy, &r.Target, &r.Account, &dur, &r.Reason, &r.State,
		&r.Approval, &r.Grant, &r.DecidedBy, &created, &decided, &expires); err != nil {
		return store.JITRequest{}, err
	}
	r.Duration = time.Duration(dur)
	r.CreatedAt = fromNanos(created)
	r.DecidedAt = fromNullNanos(decided)
	r.ExpiresAt = fromNullNanos(expires)
	return r, nil
}

func insertJITEvent(ctx context.Context, tx *sql.Tx, ev store.JITEvent) error {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if _, err := tx.ExecContext(ctx, `
INSERT INTO jit_events (request_id, time, kind, actor, channel, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
		ev.Request, nanos(ev.Time), ev.Kind, store.CleanText(ev.Actor), store.CleanText(ev.Channel), store.CleanText(ev.Detail)); err != nil {
		return fmt.Errorf("append event %s of JIT request %q: %w", ev.Kind, ev.Request, err)
	}
	return nil
}

// CreateJITRequest stores a new request and its first event.
func (s *JIT) CreateJITRequest(ctx context.Context, r store.JITRequest, ev store.JITEvent) error {
	if r.ID == "" || r.Requester == "" || r.State == "" {
		return fmt.Errorf("create JIT request %q: id, requester and state are required", r.ID)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	tx, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create JIT request %q: %w", r.ID, err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `
INSERT INTO jit_requests (`+jitColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (id) DO NOTHING`,
		r.ID, r.Requester, r.Policy, r.Target, r.Account, int64(r.Duration), store.CleanText(r.Reason), r.State,
		r.Approval, r.Grant, r.DecidedBy, nanos(r.CreatedAt), nullNanos(r.DecidedAt), nullNanos(r.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create JIT request %q: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create JIT request %q: %w", r.ID, err)
	} else if n == 0 {
		return fmt.Errorf("create JIT request %q: id exists: %w", r.ID, store.ErrConflict)
	}
	ev.Request = r.ID
	if err := insertJITEvent(ctx, tx, ev); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create JIT request %q: %w", r.ID, err)
	}
	return nil
}

// GetJITRequest returns one request.
func (s *JIT) GetJITRequest(ctx context.Context, id string) (store.JITRequest, error) {
	r, err := scanJIT(s.R.QueryRowContext(ctx, `SELECT `+jitColumns+` FROM jit_requests WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.JITRequest{}, fmt.Errorf("JIT request %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.JITRequest{}, fmt.Errorf("JIT request %q: %w", id, err)
	}
	return r, nil
}

// ListJITRequests returns requests matching f, newest first.
func (s *JIT) ListJITRequests(ctx context.Context, f store.JITFilter) ([]store.JITRequest, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.R.QueryContext(ctx, `
SELECT `+jitColumns+` FROM jit_requests
WHERE ($1 = '' OR state = $1) AND ($2 = '' OR requester = $2)
ORDER BY created_at DESC, id DESC
LIMIT $3`, f.State, f.Requester, limit)
	if err != nil {
		return nil, fmt.Errorf("list JIT requests: %w", err)
	}
	defer rows.Close()
	var out []store.JITRequest
	for rows.Next() {
		r, err := scanJIT(rows)
		if err != nil {
			return nil, fmt.Errorf("list JIT requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list JIT requests: %w", err)
	}
	return out, nil
}

// TransitionJITRequest moves a request out of state from, with an event.
func (s *JIT) TransitionJITRequest(ctx context.Context, r store.JITRequest, from string, ev store.JITEvent) error {
	tx, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update JIT request %q: %w", r.ID, err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `
UPDATE jit_requests SET state = $1, approval = $2, grant_name = $3, decided_by = $4, decided_at = $5, expires_at = $6
WHERE id = $7 AND state = $8`,
		r.State, r.Approval, r.Grant, r.DecidedBy, nullNanos(r.DecidedAt), nullNanos(r.ExpiresAt), r.ID, from)
	if err != nil {
		return fmt.Errorf("update JIT request %q: %w", r.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("update JIT request %q: %w", r.ID, err)
	}
	if n == 0 {
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM jit_requests WHERE id = $1`, r.ID).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("JIT request %q: %w", r.ID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("update JIT request %q: %w", r.ID, err)
		}
		return fmt.Errorf("JIT request %q is %s, not %s: %w", r.ID, state, from, store.ErrConflict)
	}
	ev.Request = r.ID
	if err := insertJITEvent(ctx, tx, ev); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("update JIT request %q: %w", r.ID, err)
	}
	return nil
}

// AppendJITEvent adds a step to a request's history.
func (s *JIT) AppendJITEvent(ctx context.Context, ev store.JITEvent) error {
	tx, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append JIT event: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := insertJITEvent(ctx, tx, ev); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append JIT event: %w", err)
	}
	return nil
}

// ListJITEvents returns a request's history, oldest first.
func (s *JIT) ListJITEvents(ctx context.Context, request string) ([]store.JITEvent, error) {
	rows, err := s.R.QueryContext(ctx, `
SELECT id, request_id, time, kind, actor, channel, detail FROM jit_events WHERE request_id = $1 ORDER BY id`, request)
	if err != nil {
		return nil, fmt.Errorf("history of JIT request %q: %w", request, err)
	}
	defer rows.Close()
	var out []store.JITEvent
	for rows.Next() {
		var (
			ev store.JITEvent
			t  int64
		)
		if err := rows.Scan(&ev.ID, &ev.Request, &t, &ev.Kind, &ev.Actor, &ev.Channel, &ev.Detail); err != nil {
			return nil, fmt.Errorf("history of JIT request %q: %w", request, err)
		}
		ev.Time = fromNanos(t)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history of JIT request %q: %w", request, err)
	}
	return out, nil
}

// CreateJITLink stores a webhook link.
func (s *JIT) CreateJITLink(ctx context.Context, l store.JITLink) error {
	if _, err := s.W.ExecContext(ctx, `
INSERT INTO jit_links (token_hash, request_id, action, expires_at) VALUES ($1, $2, $3, $4)`,
		l.TokenHash, l.Request, l.Action, nanos(l.ExpiresAt)); err != nil {
		return fmt.Errorf("create link of JIT request %q: %w", l.Request, err)
	}
	return nil
}

// UseJITLink marks a link used; the UPDATE is the one-time check.
func (s *JIT) UseJITLink(ctx context.Context, tokenHash string, at time.Time) (store.JITLink, error) {
	res, err := s.W.ExecContext(ctx, `
UPDATE jit_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1`, nanos(at), tokenHash)
	if err := mustAffect(res, err, "use JIT link"); err != nil {
		return store.JITLink{}, err
	}
	return getJITLink(ctx, s.W, tokenHash)
}

// GetJITLink returns a link, used or not.
func (s *JIT) GetJITLink(ctx context.Context, tokenHash string) (store.JITLink, error) {
	return getJITLink(ctx, s.R, tokenHash)
}

func getJITLink(ctx context.Context, db *sql.DB, tokenHash string) (store.JITLink, error) {
	var (
		l       store.JITLink
		expires int64
		used    sql.NullInt64
	)
	err := db.QueryRowContext(ctx, `SELECT token_hash, request_id, action, expires_at, used_at FROM jit_links WHERE token_hash = $1`,
		tokenHash).Scan(&l.TokenHash, &l.Request, &l.Action, &expires, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return store.JITLink{}, fmt.Errorf("JIT link: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.JITLink{}, fmt.Errorf("JIT link: %w", err)
	}
	l.ExpiresAt, l.UsedAt = fromNanos(expires), fromNullNanos(used)
	return l, nil
}
