package migrations

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// chainBatch is how many audit events chainAudit reads at a time.
const chainBatch = 1000

// chainAudit is the Go step of version 2: it chains the audit events that
// existed before the trail had hashes (development databases only), so that
// verification covers them too instead of starting after them. Each event is
// hashed as a store reads it back (Detail decoded from its stored JSON,
// Time from its stored nanoseconds), exactly as the verifier will recompute
// it. Events are read in batches of chainBatch, each batch fully read
// before its rows are updated.
func chainAudit(ctx context.Context, tx *sql.Tx, _ Dialect) error {
	var (
		prev  string
		after int64
	)
	for {
		evs, err := readAuditBatch(ctx, tx, after)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		for _, ev := range evs {
			hash := store.HashEvent(prev, ev)
			if _, err := tx.ExecContext(ctx, `UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE id = $3`,
				prev, hash, ev.ID); err != nil {
				return fmt.Errorf("chain audit events: update event %d: %w", ev.ID, err)
			}
			prev = hash
		}
		after = evs[len(evs)-1].ID
	}
}

// readAuditBatch reads up to chainBatch events with IDs above after.
func readAuditBatch(ctx context.Context, tx *sql.Tx, after int64) ([]store.AuditEvent, error) {
	rows, err := tx.QueryContext(ctx, `
SELECT id, time, type, outcome, user_name, source, target, account, session_id, policy, message, detail
FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2`, after, int64(chainBatch))
	if err != nil {
		return nil, fmt.Errorf("chain audit events: read after %d: %w", after, err)
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
			&ev.Account, &ev.SessionID, &ev.Policy, &ev.Message, &detail); err != nil {
			return nil, fmt.Errorf("chain audit events: read after %d: %w", after, err)
		}
		ev.Time = time.Unix(0, t).UTC()
		if detail.Valid {
			if err := json.Unmarshal([]byte(detail.String), &ev.Detail); err != nil {
				return nil, fmt.Errorf("chain audit events: event %d: decode detail: %w", ev.ID, err)
			}
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chain audit events: read after %d: %w", after, err)
	}
	return evs, nil
}
