package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// Checkpoints implements the store.Store methods for the audit trail's
// signed checkpoints, its signing key, its head and retention.
type Checkpoints struct {
	// R reads and W writes, as in Access.
	R, W *sql.DB
	// LockAudit, when set, is called first in PruneAudit's transaction to
	// keep appenders out while it cuts (PostgreSQL's advisory lock); nil
	// when the transaction already holds the database's write lock
	// (SQLite, BEGIN IMMEDIATE).
	LockAudit func(ctx context.Context, tx *sql.Tx) error
}

// AuditHead returns the newest event's ID and Hash, 0 and "" when the trail
// is empty.
func (s *Checkpoints) AuditHead(ctx context.Context) (int64, string, error) {
	var (
		id   int64
		hash string
	)
	err := s.R.QueryRowContext(ctx, `SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&id, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("read audit head: %w", err)
	}
	return id, hash, nil
}

// PruneAudit removes the oldest events before t, never the newest, and
// stores the retention checkpoint seal makes, all in one transaction: a
// cut without its signed record would read as an attacker's removal.
func (s *Checkpoints) PruneAudit(ctx context.Context, t time.Time,
	seal func(firstKept int64, anchor string) (store.AuditCheckpoint, error)) (int64, store.AuditCheckpoint, error) {
	tx, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		return 0, store.AuditCheckpoint{}, fmt.Errorf("prune audit: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if s.LockAudit != nil {
		if err := s.LockAudit(ctx, tx); err != nil {
			return 0, store.AuditCheckpoint{}, fmt.Errorf("prune audit: %w", err)
		}
	}
	// The first event at or after t, or else the newest: every event
	// before it goes.
	var cut, first sql.NullInt64
	if err := tx.QueryRowContext(ctx, `
SELECT COALESCE((SELECT id FROM audit_events WHERE time >= $1 ORDER BY id LIMIT 1),
                (SELECT MAX(id) FROM audit_events)),
       (SELECT MIN(id) FROM audit_events)`, nanos(t)).Scan(&cut, &first); err != nil {
		return 0, store.AuditCheckpoint{}, fmt.Errorf("prune audit before %v: find the cut: %w", t, err)
	}
	if !cut.Valid || cut.Int64 <= first.Int64 {
		return 0, store.AuditCheckpoint{}, nil
	}
	var anchor string
	if err := tx.QueryRowContext(ctx, `SELECT prev_hash FROM audit_events WHERE id = $1`, cut.Int64).Scan(&anchor); err != nil {
		return 0, store.AuditCheckpoint{}, fmt.Errorf("prune audit: read event %d: %w", cut.Int64, err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM audit_events WHERE id < $1`, cut.Int64)
	if err != nil {
		return 0, store.AuditCheckpoint{}, fmt.Errorf("prune audit before event %d: %w", cut.Int64, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, store.AuditCheckpoint{}, fmt.Errorf("prune audit before event %d: %w", cut.Int64, err)
	}
	cp, err := seal(cut.Int64, anchor)
	if err != nil {
		return 0, store.AuditCheckpoint{}, fmt.Errorf("prune audit: sign the retention checkpoint: %w", err)
	}
	if cp.Seq, err = insertCheckpoint(ctx, tx, cp); err != nil {
		return 0, store.AuditCheckpoint{}, fmt.Errorf("prune audit: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, store.AuditCheckpoint{}, fmt.Errorf("prune audit: commit: %w", err)
	}
	return n, cp, nil
}

// execQuerier is *sql.DB or *sql.Tx.
type execQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func insertCheckpoint(ctx context.Context, q execQuerier, cp store.AuditCheckpoint) (int64, error) {
	if cp.Kind == "" || cp.Signature == "" {
		return 0, fmt.Errorf("store audit checkpoint: kind and signature are required")
	}
	var seq int64
	if err := q.QueryRowContext(ctx, `
INSERT INTO audit_checkpoints (kind, event_id, hash, time, gateway, signature)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id`, cp.Kind, cp.EventID, cp.Hash, nanos(cp.Time), cp.Gateway, cp.Signature).Scan(&seq); err != nil {
		return 0, fmt.Errorf("store %s audit checkpoint at event %d: %w", cp.Kind, cp.EventID, err)
	}
	return seq, nil
}

// AppendCheckpoint stores a checkpoint and returns its Seq.
func (s *Checkpoints) AppendCheckpoint(ctx context.Context, cp store.AuditCheckpoint) (int64, error) {
	return insertCheckpoint(ctx, s.W, cp)
}

// LatestCheckpoint returns the checkpoint of kind with the largest EventID,
// the latest stored among equals; store.ErrNotFound if there is none.
func (s *Checkpoints) LatestCheckpoint(ctx context.Context, kind string) (store.AuditCheckpoint, error) {
	cp := store.AuditCheckpoint{Kind: kind}
	var t int64
	err := s.R.QueryRowContext(ctx, `
SELECT id, event_id, hash, time, gateway, signature FROM audit_checkpoints
WHERE kind = $1 ORDER BY event_id DESC, id DESC LIMIT 1`, kind).Scan(&cp.Seq, &cp.EventID, &cp.Hash, &t, &cp.Gateway, &cp.Signature)
	if errors.Is(err, sql.ErrNoRows) {
		return store.AuditCheckpoint{}, fmt.Errorf("latest %s audit checkpoint: %w", kind, store.ErrNotFound)
	}
	if err != nil {
		return store.AuditCheckpoint{}, fmt.Errorf("latest %s audit checkpoint: %w", kind, err)
	}
	cp.Time = fromNanos(t)
	return cp, nil
}

// GetAuditKey returns the audit key, store.ErrNotFound before it is made.
func (s *Checkpoints) GetAuditKey(ctx context.Context) (store.AuditKey, error) {
	var (
		k store.AuditKey
		t int64
	)
	err := s.R.QueryRowContext(ctx, `SELECT public_key, sealed, created_at FROM audit_key WHERE id = 1`).Scan(&k.PublicKey, &k.Sealed, &t)
	if errors.Is(err, sql.ErrNoRows) {
		return store.AuditKey{}, fmt.Errorf("audit key: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.AuditKey{}, fmt.Errorf("audit key: %w", err)
	}
	k.CreatedAt = fromNanos(t)
	return k, nil
}

// CreateAuditKey stores k unless a key exists: store.ErrConflict then.
func (s *Checkpoints) CreateAuditKey(ctx context.Context, k store.AuditKey) error {
	if k.PublicKey == "" || len(k.Sealed) == 0 {
		return errors.New("create audit key: public key and sealed private key are required")
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	res, err := s.W.ExecContext(ctx, `
INSERT INTO audit_key (id, public_key, sealed, created_at) VALUES (1, $1, $2, $3)
ON CONFLICT (id) DO NOTHING`, k.PublicKey, k.Sealed, nanos(k.CreatedAt))
	if err != nil {
		return fmt.Errorf("create audit key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create audit key: %w", err)
	} else if n == 0 {
		return fmt.Errorf("create audit key: %w", store.ErrConflict)
	}
	return nil
}
