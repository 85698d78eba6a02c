package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// recordingCols are the columns scanRecording reads, in order.
const recordingCols = `id, user_name, target, account, source, action, command, started_at, ended_at, state, size, sha256, gateway, index_state, index_offset, lost_bytes, gap_from_ms, gap_to_ms`

// CreateRecording stores a new recording's metadata as active: r.State,
// r.EndedAt, r.Size and r.SHA256 are ignored. r.ID is required; a zero
// r.StartedAt is taken as now; text fields (r.Gateway too) go through
// store.CleanText.
// store.ErrConflict if a recording with that ID exists.
func (s *Store) CreateRecording(ctx context.Context, r store.Recording) error {
	if r.ID == "" {
		return errors.New("create recording: id is required")
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	res, err := s.w.ExecContext(ctx, `
INSERT INTO recordings (id, user_name, target, account, source, action, command, started_at, state, gateway, index_state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO NOTHING`,
		r.ID, store.CleanText(r.User), store.CleanText(r.Target), store.CleanText(r.Account),
		store.CleanText(r.Source), store.CleanText(r.Action), store.CleanText(r.Command),
		nanos(r.StartedAt), store.RecordingActive, store.CleanText(r.Gateway), store.IndexLive)
	if err != nil {
		return fmt.Errorf("create recording %q: %w", r.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("create recording %q: %w", r.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("create recording %q: already exists: %w", r.ID, store.ErrConflict)
	}
	return nil
}

// FinishRecording sets a recording's end time, state (store.RecordingEnded,
// store.RecordingIncomplete or store.RecordingInterrupted; anything else is
// an error), size and hash.
// A zero endedAt is taken as now. It may be called again, for example to
// fill in the size and hash of a recording InterruptActive closed.
// store.ErrNotFound if the recording does not exist.
func (s *Store) FinishRecording(ctx context.Context, id, state string, endedAt time.Time, size int64, sha256 string) error {
	switch state {
	case store.RecordingEnded, store.RecordingIncomplete, store.RecordingInterrupted:
	default:
		return fmt.Errorf("finish recording %q: state %q: want %q, %q or %q", id, state,
			store.RecordingEnded, store.RecordingIncomplete, store.RecordingInterrupted)
	}
	if endedAt.IsZero() {
		endedAt = time.Now()
	}
	res, err := s.w.ExecContext(ctx, `
UPDATE recordings SET state = $1, ended_at = $2, size = $3, sha256 = $4 WHERE id = $5`,
		state, nanos(endedAt), size, sha256, id)
	if err != nil {
		return fmt.Errorf("finish recording %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("finish recording %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("finish recording %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// GetRecording returns one recording, store.ErrNotFound if absent.
func (s *Store) GetRecording(ctx context.Context, id string) (store.Recording, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+recordingCols+` FROM recordings WHERE id = $1`, id)
	r, err := scanRecording(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Recording{}, fmt.Errorf("get recording %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Recording{}, fmt.Errorf("get recording %q: %w", id, err)
	}
	return r, nil
}

// ListRecordings returns recordings matching f, newest first (by start
// time, then by ID, descending). Since is inclusive. A Limit of zero or less
// means 1000.
func (s *Store) ListRecordings(ctx context.Context, f store.RecordingFilter) ([]store.Recording, error) {
	var w filter
	if f.User != "" {
		w.add("user_name = $%d", f.User)
	}
	if f.Target != "" {
		w.add("target = $%d", f.Target)
	}
	if f.State != "" {
		w.add("state = $%d", f.State)
	}
	if !f.Since.IsZero() {
		w.add("started_at >= $%d", nanos(f.Since))
	}
	if f.BeforeID != "" {
		// The listing's own order, so that pages neither overlap nor skip.
		w.add(`(started_at < $%d OR (started_at = $%d AND id < $%d))`, nanos(f.BeforeStarted), nanos(f.BeforeStarted), f.BeforeID)
	}
	q, args := w.query(`SELECT `+recordingCols+` FROM recordings`, "started_at DESC, id DESC", f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list recordings: %w", err)
	}
	defer rows.Close()
	var out []store.Recording
	for rows.Next() {
		r, err := scanRecording(rows)
		if err != nil {
			return nil, fmt.Errorf("list recordings: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list recordings: %w", err)
	}
	return out, nil
}

// DeleteRecording removes a recording's metadata and its text (and so its
// search index entries) in one transaction; store.ErrNotFound if absent.
// An active recording may be deleted: IndexText for it then fails with
// store.ErrNotFound.
func (s *Store) DeleteRecording(ctx context.Context, id string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete recording %q: begin: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `DELETE FROM recording_text WHERE recording_id = $1`, id); err != nil {
		return fmt.Errorf("delete recording %q: delete text: %w", id, err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM recordings WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete recording %q: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete recording %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("delete recording %q: %w", id, store.ErrNotFound)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete recording %q: commit: %w", id, err)
	}
	return nil
}

// InterruptActive marks gateway's active recordings interrupted, ended at
// endedAt (now if zero), and returns them as they now are, oldest first.
// Recordings of other gateways sharing the database are left as they are;
// gateway "" matches those stored without one.
func (s *Store) InterruptActive(ctx context.Context, gateway string, endedAt time.Time) ([]store.Recording, error) {
	if endedAt.IsZero() {
		endedAt = time.Now()
	}
	// RETURNING (SQLite 3.35, PostgreSQL): one statement, so nothing can
	// start or finish between choosing the rows and changing them.
	rows, err := s.w.QueryContext(ctx, `
UPDATE recordings SET state = $1, ended_at = $2 WHERE gateway = $3 AND state = $4
RETURNING `+recordingCols, store.RecordingInterrupted, nanos(endedAt), store.CleanText(gateway), store.RecordingActive)
	if err != nil {
		return nil, fmt.Errorf("interrupt active recordings of gateway %q: %w", gateway, err)
	}
	defer rows.Close()
	var out []store.Recording
	for rows.Next() {
		r, err := scanRecording(rows)
		if err != nil {
			return nil, fmt.Errorf("interrupt active recordings of gateway %q: %w", gateway, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("interrupt active recordings of gateway %q: %w", gateway, err)
	}
	// RETURNING gives no order.
	slices.SortFunc(out, func(a, b store.Recording) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func scanRecording(sc scanner) (store.Recording, error) {
	var (
		gapFrom, gapTo int64
		r              store.Recording
		started        int64
		ended          sql.NullInt64
	)
	if err := sc.Scan(&r.ID, &r.User, &r.Target, &r.Account, &r.Source, &r.Action, &r.Command,
		&started, &ended, &r.State, &r.Size, &r.SHA256, &r.Gateway, &r.IndexState, &r.IndexOffset,
		&r.LostBytes, &gapFrom, &gapTo); err != nil {
		return store.Recording{}, err
	}
	r.GapFrom, r.GapTo = time.Duration(gapFrom)*time.Millisecond, time.Duration(gapTo)*time.Millisecond
	r.StartedAt = fromNanos(started)
	if ended.Valid {
		r.EndedAt = fromNanos(ended.Int64)
	}
	return r, nil
}
