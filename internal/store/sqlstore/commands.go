package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// AppendCommands stores commands in one transaction, in order (ascending
// IDs), as AppendCommand stores each: all or none. The command history
// queue (package cmdqueue) writes what queued while it wrote the last
// batch this way, so that a busy gateway pays one commit per batch
// rather than one per row.
func (s *Access) AppendCommands(ctx context.Context, cs []store.Command) error {
	tx, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append %d commands: %w", len(cs), err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, `
INSERT INTO commands
    (time, user_name, target, account, session_id, source, command, interactive, certain, exit_status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`)
	if err != nil {
		return fmt.Errorf("append %d commands: %w", len(cs), err)
	}
	defer stmt.Close()
	for _, c := range cs {
		if c.Time.IsZero() {
			c.Time = time.Now()
		}
		var exit any // NULL until known
		if c.ExitStatus != nil {
			exit = int64(*c.ExitStatus)
		}
		if _, err := stmt.ExecContext(ctx, nanos(c.Time), store.CleanText(c.User), store.CleanText(c.Target), store.CleanText(c.Account),
			store.CleanText(c.SessionID), store.CleanText(c.Source), store.CleanText(c.Command),
			c.Interactive, c.Certain, exit); err != nil {
			return fmt.Errorf("append command of session %q: %w", c.SessionID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append %d commands: %w", len(cs), err)
	}
	return nil
}
