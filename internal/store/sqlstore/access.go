// Package sqlstore holds the parts of the gateway's store that both
// database backends (store/sqlite, store/postgres) run unchanged: the SQL
// is portable ($n placeholders, ON CONFLICT, BIGINT UTC nanoseconds), so
// it is written once here and each backend embeds it, instead of keeping
// two copies that drift apart. What differs between the backends (audit
// chain locking, full-text search, change notification) stays in them.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// Access implements the store.Store methods for API keys, settings,
// local password hashes and web console sessions.
type Access struct {
	// R reads and W writes; they may be the same pool (PostgreSQL) or a
	// read pool and the single writer (SQLite).
	R, W *sql.DB
	// ByteOrder is appended to ORDER BY on a text column so that ties
	// sort in byte order whatever the database's collation (PostgreSQL:
	// ` COLLATE "C"`; SQLite's default is already bytes).
	ByteOrder string
}

func nanos(t time.Time) int64 { return t.UTC().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// nullNanos stores a zero time as NULL.
func nullNanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return nanos(t)
}

// fromNullNanos reads a nullable time column; NULL is the zero time.
func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

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

// CreateAPIKey stores a new key, store.ErrConflict if its ID exists.
func (s *Access) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	if k.ID == "" || k.SecretHash == "" || k.Kind == "" {
		return fmt.Errorf("create API key %q: id, kind and secret hash are required", k.ID)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	cidrs := k.SourceCIDRs
	if cidrs == nil {
		cidrs = []string{}
	}
	cj, err := json.Marshal(cidrs)
	if err != nil {
		return fmt.Errorf("create API key %q: encode source CIDRs: %w", k.ID, err)
	}
	res, err := s.W.ExecContext(ctx, `
INSERT INTO api_keys (id, name, kind, owner, created_by, secret_hash, source_cidrs, created_at, expires_at, revoked_at,
    environment, max_uses, uses, name_pattern)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (id) DO NOTHING`,
		k.ID, k.Name, k.Kind, k.Owner, k.CreatedBy, k.SecretHash, string(cj),
		nanos(k.CreatedAt), nullNanos(k.ExpiresAt), nullNanos(k.RevokedAt),
		k.Environment, k.MaxUses, k.Uses, k.NamePattern)
	if err != nil {
		return fmt.Errorf("create API key %q: %w", k.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create API key %q: %w", k.ID, err)
	} else if n == 0 {
		return fmt.Errorf("create API key %q: id exists: %w", k.ID, store.ErrConflict)
	}
	return nil
}

const apiKeyColumns = `id, name, kind, owner, created_by, secret_hash, source_cidrs, created_at, expires_at, revoked_at,
    environment, max_uses, uses, name_pattern`

func scanAPIKey(sc scanner) (store.APIKey, error) {
	var (
		k                store.APIKey
		cidrs            string
		created          int64
		expires, revoked sql.NullInt64
	)
	if err := sc.Scan(&k.ID, &k.Name, &k.Kind, &k.Owner, &k.CreatedBy, &k.SecretHash, &cidrs,
		&created, &expires, &revoked, &k.Environment, &k.MaxUses, &k.Uses, &k.NamePattern); err != nil {
		return store.APIKey{}, err
	}
	if err := json.Unmarshal([]byte(cidrs), &k.SourceCIDRs); err != nil {
		return store.APIKey{}, fmt.Errorf("API key %q: decode source CIDRs: %w", k.ID, err)
	}
	k.CreatedAt = fromNanos(created)
	k.ExpiresAt = fromNullNanos(expires)
	k.RevokedAt = fromNullNanos(revoked)
	return k, nil
}

// GetAPIKey returns one key, store.ErrNotFound if absent.
func (s *Access) GetAPIKey(ctx context.Context, id string) (store.APIKey, error) {
	k, err := scanAPIKey(s.R.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.APIKey{}, fmt.Errorf("API key %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.APIKey{}, fmt.Errorf("API key %q: %w", id, err)
	}
	return k, nil
}

// ListAPIKeys returns every key, oldest first.
func (s *Access) ListAPIKeys(ctx context.Context) ([]store.APIKey, error) {
	rows, err := s.R.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_at, id`+s.ByteOrder)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	defer rows.Close()
	var keys []store.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list API keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey marks a key revoked; a second revocation keeps the first
// time.
func (s *Access) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.W.ExecContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, nanos(at), id)
	return mustAffect(res, err, fmt.Sprintf("revoke API key %q", id))
}

// UseRegistrationKey counts one use of a registration key if it has one
// left and is neither revoked nor expired at at.
func (s *Access) UseRegistrationKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.W.ExecContext(ctx, `
UPDATE api_keys SET uses = uses + 1
WHERE id = $1 AND kind = $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)
  AND (max_uses = 0 OR uses < max_uses)`, id, store.APIKeyRegistration, nanos(at))
	if err != nil {
		return fmt.Errorf("use registration key %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("use registration key %q: %w", id, err)
	}
	if n == 1 {
		return nil
	}
	if _, err := s.GetAPIKey(ctx, id); err != nil {
		return fmt.Errorf("use registration key: %w", err)
	}
	return fmt.Errorf("registration key %q is used up, revoked or expired: %w", id, store.ErrConflict)
}

// GetSetting returns a setting's value, store.ErrNotFound if never set.
func (s *Access) GetSetting(ctx context.Context, name string) (string, error) {
	var v string
	err := s.R.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("setting %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("setting %q: %w", name, err)
	}
	return v, nil
}

// ListSettings returns the settings whose names start with prefix.
func (s *Access) ListSettings(ctx context.Context, prefix string) (map[string]string, error) {
	rows, err := s.R.QueryContext(ctx, `SELECT name, value FROM settings WHERE substr(name, 1, $1) = $2`, len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("list settings %q: %w", prefix, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			return nil, fmt.Errorf("list settings %q: %w", prefix, err)
		}
		out[n] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list settings %q: %w", prefix, err)
	}
	return out, nil
}

// SetSetting stores a setting's value.
func (s *Access) SetSetting(ctx context.Context, name, value string) error {
	if _, err := s.W.ExecContext(ctx, `
INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		name, value, nanos(time.Now())); err != nil {
		return fmt.Errorf("set setting %q: %w", name, err)
	}
	return nil
}

// SetPassword stores a user's password hash, replacing any.
func (s *Access) SetPassword(ctx context.Context, user, hash string, at time.Time) error {
	if user == "" || hash == "" {
		return fmt.Errorf("set password of %q: user and hash are required", user)
	}
	if _, err := s.W.ExecContext(ctx, `
INSERT INTO user_passwords (user_name, hash, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (user_name) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at`,
		user, hash, nanos(at)); err != nil {
		return fmt.Errorf("set password of %q: %w", user, err)
	}
	return nil
}

// PasswordHash returns a user's password hash, store.ErrNotFound if none.
func (s *Access) PasswordHash(ctx context.Context, user string) (string, error) {
	var h string
	err := s.R.QueryRowContext(ctx, `SELECT hash FROM user_passwords WHERE user_name = $1`, user).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("password of %q: %w", user, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("password of %q: %w", user, err)
	}
	return h, nil
}

// DeletePassword removes a user's password hash; absent is not an error.
func (s *Access) DeletePassword(ctx context.Context, user string) error {
	if _, err := s.W.ExecContext(ctx, `DELETE FROM user_passwords WHERE user_name = $1`, user); err != nil {
		return fmt.Errorf("delete password of %q: %w", user, err)
	}
	return nil
}

// CreateWebSession stores a console session, store.ErrConflict if its
// IDHash exists.
func (s *Access) CreateWebSession(ctx context.Context, ws store.WebSession) error {
	if ws.IDHash == "" || ws.User == "" {
		return errors.New("create web session: id hash and user are required")
	}
	res, err := s.W.ExecContext(ctx, `
INSERT INTO web_sessions (id_hash, user_name, csrf_token, source, created_at, last_seen, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id_hash) DO NOTHING`,
		ws.IDHash, ws.User, ws.CSRFToken, ws.Source, nanos(ws.CreatedAt), nanos(ws.LastSeen), nanos(ws.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create web session of %q: %w", ws.User, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create web session of %q: %w", ws.User, err)
	} else if n == 0 {
		return fmt.Errorf("create web session of %q: %w", ws.User, store.ErrConflict)
	}
	return nil
}

// GetWebSession returns a session, store.ErrNotFound if absent. Errors do
// not carry the id hash: logs have no use for it.
func (s *Access) GetWebSession(ctx context.Context, idHash string) (store.WebSession, error) {
	ws := store.WebSession{IDHash: idHash}
	var created, seen, expires int64
	err := s.R.QueryRowContext(ctx, `
SELECT user_name, csrf_token, source, created_at, last_seen, expires_at FROM web_sessions WHERE id_hash = $1`, idHash).
		Scan(&ws.User, &ws.CSRFToken, &ws.Source, &created, &seen, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return store.WebSession{}, fmt.Errorf("web session: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.WebSession{}, fmt.Errorf("web session: %w", err)
	}
	ws.CreatedAt, ws.LastSeen, ws.ExpiresAt = fromNanos(created), fromNanos(seen), fromNanos(expires)
	return ws, nil
}

// TouchWebSession sets a session's LastSeen.
func (s *Access) TouchWebSession(ctx context.Context, idHash string, lastSeen time.Time) error {
	res, err := s.W.ExecContext(ctx, `UPDATE web_sessions SET last_seen = $1 WHERE id_hash = $2`, nanos(lastSeen), idHash)
	return mustAffect(res, err, "touch web session")
}

// DeleteWebSession removes a session; absent is not an error.
func (s *Access) DeleteWebSession(ctx context.Context, idHash string) error {
	if _, err := s.W.ExecContext(ctx, `DELETE FROM web_sessions WHERE id_hash = $1`, idHash); err != nil {
		return fmt.Errorf("delete web session: %w", err)
	}
	return nil
}

// DeleteUserWebSessions removes every session of user.
func (s *Access) DeleteUserWebSessions(ctx context.Context, user string) error {
	if _, err := s.W.ExecContext(ctx, `DELETE FROM web_sessions WHERE user_name = $1`, user); err != nil {
		return fmt.Errorf("delete web sessions of %q: %w", user, err)
	}
	return nil
}

// DeleteExpiredWebSessions removes sessions that expired before now.
func (s *Access) DeleteExpiredWebSessions(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.W.ExecContext(ctx, `DELETE FROM web_sessions WHERE expires_at < $1`, nanos(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired web sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired web sessions: %w", err)
	}
	return n, nil
}
