package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// PutAgent stores an agent's registration, replacing its target's row and
// clearing the connection: a new identity is not connected yet.
func (s *Access) PutAgent(ctx context.Context, a store.Agent) error {
	if a.Target == "" || a.PublicKey == "" {
		return fmt.Errorf("put agent %q: target and public key are required", a.Target)
	}
	if a.RegisteredAt.IsZero() {
		a.RegisteredAt = time.Now()
	}
	_, err := s.W.ExecContext(ctx, `
INSERT INTO agents (target, public_key, mode, version, gateway, key_id, registered_at, connected_at, last_seen)
VALUES ($1, $2, $3, $4, '', $5, $6, NULL, NULL)
ON CONFLICT (target) DO UPDATE SET public_key = excluded.public_key, mode = excluded.mode,
    version = excluded.version, gateway = '', key_id = excluded.key_id,
    registered_at = excluded.registered_at, connected_at = NULL, last_seen = NULL`,
		a.Target, a.PublicKey, a.Mode, a.Version, a.KeyID, nanos(a.RegisteredAt))
	if err != nil {
		return fmt.Errorf("put agent %q: %w", a.Target, err)
	}
	return nil
}

const agentColumns = `target, public_key, mode, version, gateway, key_id, registered_at, connected_at, last_seen`

func scanAgent(sc scanner) (store.Agent, error) {
	var (
		a          store.Agent
		registered int64
		conn, seen sql.NullInt64
	)
	if err := sc.Scan(&a.Target, &a.PublicKey, &a.Mode, &a.Version, &a.Gateway, &a.KeyID, &registered, &conn, &seen); err != nil {
		return store.Agent{}, err
	}
	a.RegisteredAt = fromNanos(registered)
	a.ConnectedAt = fromNullNanos(conn)
	a.LastSeen = fromNullNanos(seen)
	return a, nil
}

// GetAgent returns one agent, store.ErrNotFound if absent.
func (s *Access) GetAgent(ctx context.Context, target string) (store.Agent, error) {
	a, err := scanAgent(s.R.QueryRowContext(ctx, `SELECT `+agentColumns+` FROM agents WHERE target = $1`, target))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Agent{}, fmt.Errorf("agent %q: %w", target, store.ErrNotFound)
	}
	if err != nil {
		return store.Agent{}, fmt.Errorf("agent %q: %w", target, err)
	}
	return a, nil
}

// ListAgents returns every agent by target name.
func (s *Access) ListAgents(ctx context.Context) ([]store.Agent, error) {
	rows, err := s.R.QueryContext(ctx, `SELECT `+agentColumns+` FROM agents ORDER BY target`+s.ByteOrder)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []store.Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}

// AgentConnected records that gateway holds the agent's connection.
func (s *Access) AgentConnected(ctx context.Context, target, gateway, version string, at time.Time) error {
	res, err := s.W.ExecContext(ctx, `
UPDATE agents SET gateway = $1, version = $2, connected_at = $3, last_seen = $3 WHERE target = $4`,
		gateway, version, nanos(at), target)
	return mustAffect(res, err, fmt.Sprintf("agent %q connected", target))
}

// AgentSeen records a heartbeat on gateway's connection.
func (s *Access) AgentSeen(ctx context.Context, target, gateway string, at time.Time) error {
	_, err := s.W.ExecContext(ctx, `UPDATE agents SET last_seen = $1 WHERE target = $2 AND gateway = $3`,
		nanos(at), target, gateway)
	if err != nil {
		return fmt.Errorf("agent %q seen: %w", target, err)
	}
	return nil
}

// AgentDisconnected records that gateway no longer holds the connection.
func (s *Access) AgentDisconnected(ctx context.Context, target, gateway string, at time.Time) error {
	_, err := s.W.ExecContext(ctx, `
UPDATE agents SET gateway = '', connected_at = NULL, last_seen = $1 WHERE target = $2 AND gateway = $3`,
		nanos(at), target, gateway)
	if err != nil {
		return fmt.Errorf("agent %q disconnected: %w", target, err)
	}
	return nil
}

// DeleteAgent removes an agent's row.
func (s *Access) DeleteAgent(ctx context.Context, target string) error {
	if _, err := s.W.ExecContext(ctx, `DELETE FROM agents WHERE target = $1`, target); err != nil {
		return fmt.Errorf("delete agent %q: %w", target, err)
	}
	return nil
}
