package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// This file holds TOTP enrollments, recovery code hashes and the time steps
// already used. The SQL is the same as the PostgreSQL backend's.

// PutMFAEnrollment replaces the user's enrollment, recovery codes and used
// steps in one transaction.
func (s *Store) PutMFAEnrollment(ctx context.Context, e store.MFAEnrollment, recoveryHashes []string) error {
	if e.User == "" || len(e.Secret) == 0 || e.State == "" {
		return errors.New("put MFA enrollment: user, secret and state are required")
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now()
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put MFA enrollment of %q: begin: %w", e.User, err)
	}
	// Rollback after a successful Commit is a no-op returning ErrTxDone.
	defer func() { _ = tx.Rollback() }()
	for _, q := range []string{
		`DELETE FROM mfa_enrollments WHERE user_name = $1`,
		`DELETE FROM mfa_recovery_codes WHERE user_name = $1`,
		`DELETE FROM mfa_used_steps WHERE user_name = $1`,
	} {
		if _, err := tx.ExecContext(ctx, q, e.User); err != nil {
			return fmt.Errorf("put MFA enrollment of %q: clear: %w", e.User, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `
INSERT INTO mfa_enrollments (user_name, secret, state, created_at, activated_at)
VALUES ($1, $2, $3, $4, $5)`,
		e.User, e.Secret, e.State, nanos(e.CreatedAt), nullNanos(e.ActivatedAt)); err != nil {
		return fmt.Errorf("put MFA enrollment of %q: %w", e.User, err)
	}
	for _, h := range recoveryHashes {
		if _, err := tx.ExecContext(ctx, `
INSERT INTO mfa_recovery_codes (user_name, code_hash) VALUES ($1, $2)
ON CONFLICT (user_name, code_hash) DO NOTHING`, e.User, h); err != nil {
			return fmt.Errorf("put MFA enrollment of %q: recovery code: %w", e.User, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put MFA enrollment of %q: commit: %w", e.User, err)
	}
	return nil
}

// GetMFAEnrollment returns a user's enrollment, store.ErrNotFound if none.
func (s *Store) GetMFAEnrollment(ctx context.Context, user string) (store.MFAEnrollment, error) {
	e := store.MFAEnrollment{User: user}
	var (
		created   int64
		activated sql.NullInt64
	)
	err := s.r.QueryRowContext(ctx, `
SELECT secret, state, created_at, activated_at,
       (SELECT COUNT(*) FROM mfa_recovery_codes r WHERE r.user_name = e.user_name AND r.used_at IS NULL)
FROM mfa_enrollments e WHERE user_name = $1`, user).
		Scan(&e.Secret, &e.State, &created, &activated, &e.RecoveryLeft)
	if errors.Is(err, sql.ErrNoRows) {
		return store.MFAEnrollment{}, fmt.Errorf("MFA enrollment of %q: %w", user, store.ErrNotFound)
	}
	if err != nil {
		return store.MFAEnrollment{}, fmt.Errorf("MFA enrollment of %q: %w", user, err)
	}
	e.CreatedAt, e.ActivatedAt = fromNanos(created), fromNullNanos(activated)
	return e, nil
}

// ActivateMFA marks a pending enrollment active.
func (s *Store) ActivateMFA(ctx context.Context, user string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `
UPDATE mfa_enrollments SET state = $1, activated_at = $2 WHERE user_name = $3 AND state = $4`,
		store.MFAActive, nanos(at), user, store.MFAPending)
	return mustAffect(res, err, fmt.Sprintf("activate MFA of %q", user))
}

// DeleteMFA removes everything MFA of a user.
func (s *Store) DeleteMFA(ctx context.Context, user string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete MFA of %q: begin: %w", user, err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, q := range []string{
		`DELETE FROM mfa_enrollments WHERE user_name = $1`,
		`DELETE FROM mfa_recovery_codes WHERE user_name = $1`,
		`DELETE FROM mfa_used_steps WHERE user_name = $1`,
	} {
		if _, err := tx.ExecContext(ctx, q, user); err != nil {
			return fmt.Errorf("delete MFA of %q: %w", user, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete MFA of %q: commit: %w", user, err)
	}
	return nil
}

// UseMFAStep records a used time step; store.ErrConflict if it was used.
func (s *Store) UseMFAStep(ctx context.Context, user string, step int64, at time.Time) error {
	// ON CONFLICT DO NOTHING and a row count rather than the driver's
	// constraint error: the outcome reads the same in every database.
	res, err := s.w.ExecContext(ctx, `
INSERT INTO mfa_used_steps (user_name, step, used_at) VALUES ($1, $2, $3)
ON CONFLICT (user_name, step) DO NOTHING`, user, step, nanos(at))
	if err != nil {
		return fmt.Errorf("use MFA step of %q: %w", user, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("use MFA step of %q: %w", user, err)
	}
	if n == 0 {
		return fmt.Errorf("use MFA step of %q: code already used: %w", user, store.ErrConflict)
	}
	// Steps this old can no longer be presented: keep the table small.
	if _, err := s.w.ExecContext(ctx, `DELETE FROM mfa_used_steps WHERE user_name = $1 AND step < $2`, user, step-10); err != nil {
		return fmt.Errorf("use MFA step of %q: forget old steps: %w", user, err)
	}
	return nil
}

// UseRecoveryCode marks an unused recovery code used.
func (s *Store) UseRecoveryCode(ctx context.Context, user, hash string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `
UPDATE mfa_recovery_codes SET used_at = $1 WHERE user_name = $2 AND code_hash = $3 AND used_at IS NULL`,
		nanos(at), user, hash)
	return mustAffect(res, err, fmt.Sprintf("use recovery code of %q", user))
}
