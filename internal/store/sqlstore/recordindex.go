package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// RecordingIndex implements the store.Store methods that track how far
// each recording's search index is (migration 0007) and what it lost
// (migration 0008).
type RecordingIndex struct {
	R, W *sql.DB
}

// SetRecordingIndex stores a recording's index state and catch-up offset.
func (x RecordingIndex) SetRecordingIndex(ctx context.Context, id, state string, offset int64) error {
	switch state {
	case store.IndexLive, store.IndexPartial, store.IndexComplete, store.IndexFailed:
	default:
		return fmt.Errorf("set index state of recording %q: unknown state %q", id, state)
	}
	res, err := x.W.ExecContext(ctx, `UPDATE recordings SET index_state = $1, index_offset = $2 WHERE id = $3`,
		state, offset, id)
	return mustAffect(res, err, fmt.Sprintf("set index state of recording %q", id))
}

// SetRecordingGap stores what a recording lost (migration 0008).
func (x RecordingIndex) SetRecordingGap(ctx context.Context, id string, lostBytes int64, from, to time.Duration) error {
	res, err := x.W.ExecContext(ctx, `UPDATE recordings SET lost_bytes = $1, gap_from_ms = $2, gap_to_ms = $3 WHERE id = $4`,
		lostBytes, from.Milliseconds(), to.Milliseconds(), id)
	return mustAffect(res, err, fmt.Sprintf("set gap of recording %q", id))
}

// IndexBacklog returns a gateway's ended recordings whose index is live or
// partial, oldest first.
func (x RecordingIndex) IndexBacklog(ctx context.Context, gateway string, limit int) ([]store.Recording, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := x.R.QueryContext(ctx, `
SELECT id, started_at, state, size, gateway, index_state, index_offset
FROM recordings
WHERE gateway = $1 AND index_state IN ($2, $3) AND state <> $4
ORDER BY started_at, id
LIMIT $5`, gateway, store.IndexLive, store.IndexPartial, store.RecordingActive, limit)
	if err != nil {
		return nil, fmt.Errorf("index backlog: %w", err)
	}
	defer rows.Close()
	var out []store.Recording
	for rows.Next() {
		var (
			r       store.Recording
			started int64
		)
		if err := rows.Scan(&r.ID, &started, &r.State, &r.Size, &r.Gateway, &r.IndexState, &r.IndexOffset); err != nil {
			return nil, fmt.Errorf("index backlog: %w", err)
		}
		r.StartedAt = fromNanos(started)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index backlog: %w", err)
	}
	return out, nil
}

// DeleteRecordingText removes a recording's indexed text.
func (x RecordingIndex) DeleteRecordingText(ctx context.Context, id string) error {
	if _, err := x.W.ExecContext(ctx, `DELETE FROM recording_text WHERE recording_id = $1`, id); err != nil {
		return fmt.Errorf("delete indexed text of recording %q: %w", id, err)
	}
	return nil
}
