package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// AppendCommand stores a command and returns its ID; c.ID is ignored. A
// zero c.Time is taken as now; text fields go through store.CleanText;
// c.ExitStatus is stored if already known.
//
// IDs grow, but with several gateways appending they may commit out of ID
// order: a reader tailing with CommandFilter.AfterID can pass over a
// command whose smaller ID commits after a larger one was read.
func (s *Store) AppendCommand(ctx context.Context, c store.Command) (int64, error) {
	if c.Time.IsZero() {
		c.Time = time.Now()
	}
	var exit any // NULL until known
	if c.ExitStatus != nil {
		exit = int64(*c.ExitStatus)
	}
	var id int64
	err := s.db.QueryRowContext(ctx, `
INSERT INTO commands
    (time, user_name, target, account, session_id, source, command, interactive, certain, exit_status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING id`,
		nanos(c.Time), store.CleanText(c.User), store.CleanText(c.Target), store.CleanText(c.Account),
		store.CleanText(c.SessionID), store.CleanText(c.Source), store.CleanText(c.Command),
		c.Interactive, c.Certain, exit).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("append command of session %q: %w", c.SessionID, err)
	}
	return id, nil
}

// SetCommandExit records the exit status of a command; store.ErrNotFound if
// there is no command with that ID.
func (s *Store) SetCommandExit(ctx context.Context, id int64, status int) error {
	res, err := s.db.ExecContext(ctx, `UPDATE commands SET exit_status = $1 WHERE id = $2`, int64(status), id)
	return mustAffect(res, err, fmt.Sprintf("set exit status of command %d", id))
}

// ListCommands returns commands matching f in ascending ID order (oldest
// first). Since is inclusive. A Limit of zero or less means 1000.
func (s *Store) ListCommands(ctx context.Context, f store.CommandFilter) ([]store.Command, error) {
	var w filter
	if f.User != "" {
		w.add("user_name = $%d", f.User)
	}
	if f.Target != "" {
		w.add("target = $%d", f.Target)
	}
	if f.SessionID != "" {
		w.add("session_id = $%d", f.SessionID)
	}
	if !f.Since.IsZero() {
		w.add("time >= $%d", nanos(f.Since))
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
	q, args := w.query(`SELECT id, time, user_name, target, account, session_id, source, command, interactive, certain, exit_status
FROM commands`, order, f.Limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list commands: %w", err)
	}
	defer rows.Close()
	var out []store.Command
	for rows.Next() {
		var (
			c    store.Command
			t    int64
			exit sql.NullInt64
		)
		if err := rows.Scan(&c.ID, &t, &c.User, &c.Target, &c.Account, &c.SessionID, &c.Source, &c.Command,
			&c.Interactive, &c.Certain, &exit); err != nil {
			return nil, fmt.Errorf("list commands: %w", err)
		}
		c.Time = fromNanos(t)
		if exit.Valid {
			v := int(exit.Int64)
			c.ExitStatus = &v
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list commands: %w", err)
	}
	return out, nil
}
