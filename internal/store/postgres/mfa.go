package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// This file holds TOTP enrollments, recovery code hashes and the time steps
// already used, with the SQLite store's SQL and contract.

// mfaLockClass is the first half of the advisory lock that serializes
// rewriting one user's MFA state ("mfa" in ASCII); the second half is a
// hash of the user's name.
const mfaLockClass = 0x6d6661

// lockMFA takes the transaction-scoped lock on user's MFA state, so that
// two gateways enrolling (or removing) the same user at once run one after
// the other instead of mixing their recovery codes.
func lockMFA(ctx context.Context, tx *sql.Tx, user string) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(mfaLockClass), user)
	return err
}

// PutMFAEnrollment replaces the user's enrollment, recovery codes and used
// steps in one transaction. A zero CreatedAt is taken as now.
func (s *Store) PutMFAEnrollment(ctx context.Context, e store.MFAEnrollment, recoveryHashes []string) error {
	if e.User == "" || len(e.Secret) == 0 || e.State == "" {
		return errors.New("put MFA enrollment: user, secret and state are required")
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now()
	}
	if recoveryHashes == nil {
		recoveryHashes = []string{} // an empty array, not NULL, for unnest
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put MFA enrollment of %q: begin: %w", e.User, err)
	}
	// Rollback after a successful Commit is a no-op returning ErrTxDone.
	defer func() { _ = tx.Rollback() }()
	if err := lockMFA(ctx, tx, e.User); err != nil {
		return fmt.Errorf("put MFA enrollment of %q: lock: %w", e.User, err)
	}
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
	if _, err := tx.ExecContext(ctx, `
INSERT INTO mfa_recovery_codes (user_name, code_hash) SELECT $1, h FROM unnest($2::text[]) AS u (h)
ON CONFLICT (user_name, code_hash) DO NOTHING`, e.User, recoveryHashes); err != nil {
		return fmt.Errorf("put MFA enrollment of %q: recovery codes: %w", e.User, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put MFA enrollment of %q: commit: %w", e.User, err)
	}
	return nil
}

// GetMFAEnrollment returns a user's enrollment with the number of unused
// recovery codes, store.ErrNotFound if none.
func (s *Store) GetMFAEnrollment(ctx context.Context, user string) (store.MFAEnrollment, error) {
	e := store.MFAEnrollment{User: user}
	var (
		created   int64
		activated sql.NullInt64
	)
	err := s.db.QueryRowContext(ctx, `
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

// ActivateMFA marks a pending enrollment active at at; store.ErrNotFound if
// the user has none pending.
func (s *Store) ActivateMFA(ctx context.Context, user string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `
UPDATE mfa_enrollments SET state = $1, activated_at = $2 WHERE user_name = $3 AND state = $4`,
		store.MFAActive, nanos(at), user, store.MFAPending)
	return mustAffect(res, err, fmt.Sprintf("activate MFA of %q", user))
}

// DeleteMFA removes a user's enrollment, recovery codes and used steps;
// absent is not an error.
func (s *Store) DeleteMFA(ctx context.Context, user string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete MFA of %q: begin: %w", user, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := lockMFA(ctx, tx, user); err != nil {
		return fmt.Errorf("delete MFA of %q: lock: %w", user, err)
	}
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

// UseMFAStep records that a code for TOTP time step was accepted;
// store.ErrConflict if that step was already used, on this gateway or
// another. It also forgets the user's steps older than step-10.
func (s *Store) UseMFAStep(ctx context.Context, user string, step int64, at time.Time) error {
	// The primary key makes the insert the replay check: of two gateways
	// inserting the same step at once, one waits for the other and then
	// inserts nothing.
	res, err := s.db.ExecContext(ctx, `
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
	if _, err := s.db.ExecContext(ctx, `DELETE FROM mfa_used_steps WHERE user_name = $1 AND step < $2`, user, step-10); err != nil {
		return fmt.Errorf("use MFA step of %q: forget old steps: %w", user, err)
	}
	return nil
}

// UseRecoveryCode marks the user's unused recovery code with this hash used
// at at; store.ErrNotFound if there is none. Of concurrent uses exactly one
// succeeds: the second UPDATE waits on the row and then no longer matches
// "used_at IS NULL".
func (s *Store) UseRecoveryCode(ctx context.Context, user, hash string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `
UPDATE mfa_recovery_codes SET used_at = $1 WHERE user_name = $2 AND code_hash = $3 AND used_at IS NULL`,
		nanos(at), user, hash)
	return mustAffect(res, err, fmt.Sprintf("use recovery code of %q", user))
}
