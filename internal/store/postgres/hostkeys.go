package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// HostKey returns the key recorded for target, store.ErrNotFound if none.
func (s *Store) HostKey(ctx context.Context, target string) (store.HostKey, error) {
	hk := store.HostKey{Target: target}
	var seen int64
	err := s.db.QueryRowContext(ctx, `SELECT key, first_seen FROM host_keys WHERE target = $1`, target).Scan(&hk.Key, &seen)
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
// has one (the stored key is left alone), also when another gateway
// recorded it a moment before. A zero FirstSeen is taken as now.
func (s *Store) RecordHostKey(ctx context.Context, hk store.HostKey) error {
	if hk.Target == "" || hk.Key == "" {
		return fmt.Errorf("record host key %q: target and key are required", hk.Target)
	}
	if hk.FirstSeen.IsZero() {
		hk.FirstSeen = time.Now()
	}
	res, err := s.db.ExecContext(ctx, `
INSERT INTO host_keys (target, key, first_seen) VALUES ($1, $2, $3)
ON CONFLICT (target) DO NOTHING`, hk.Target, hk.Key, nanos(hk.FirstSeen))
	return mustInsert(res, err, fmt.Sprintf("record host key %q", hk.Target))
}

// ForgetHostKey removes the key learned for target, store.ErrNotFound if
// there is none.
func (s *Store) ForgetHostKey(ctx context.Context, target string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM host_keys WHERE target = $1`, target)
	return mustAffect(res, err, fmt.Sprintf("forget host key %q", target))
}
