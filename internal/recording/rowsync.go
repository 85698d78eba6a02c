package recording

import (
	"context"
	"errors"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// rowRetry is how often rows the store refused are tried again.
const rowRetry = time.Second

// rowSync is a recording's row as the store must end up holding it, kept
// while the store refuses writes (a locked or read-only SQLite file, a
// PostgreSQL that is down). The file is what the recording is; the row
// lists it and says it ended, so neither Start nor Close fails a session
// for it: the row is written when the store takes writes again.
type rowSync struct {
	rec     store.Recording // StartedAt and the rest, for CreateRecording
	created bool            // the store holds the row
	ended   bool            // FinishRecording is due with rec's end fields
}

// deferCreate keeps rec to create later.
func (m *Manager) deferCreate(rec store.Recording, err error) {
	m.mu.Lock()
	m.rows[rec.ID] = &rowSync{rec: rec}
	m.mu.Unlock()
	m.refusing.Store(true)
	m.log.Warn("recording not listed in the store yet; its file is written and the row follows when the store takes writes",
		"recording", rec.ID, "err", err)
}

// finishRow stores a recording as ended, or keeps that for later if the
// store refuses it (or has not taken its row yet). It never fails: what
// the store does not take now, syncRows writes later.
func (m *Manager) finishRow(ctx context.Context, id, state string, end time.Time, size int64, sum string) {
	m.mu.Lock()
	rs, waiting := m.rows[id]
	if waiting {
		rs.ended = true
		rs.rec.State, rs.rec.EndedAt, rs.rec.Size, rs.rec.SHA256 = state, end, size, sum
	}
	m.mu.Unlock()
	if waiting {
		return
	}
	err := m.st.FinishRecording(ctx, id, state, end, size, sum)
	if err == nil || errors.Is(err, store.ErrNotFound) {
		// ErrNotFound: deleted meanwhile, nothing left to finish.
		return
	}
	m.refusing.Store(true)
	m.mu.Lock()
	m.rows[id] = &rowSync{created: true, ended: true,
		rec: store.Recording{ID: id, State: state, EndedAt: end, Size: size, SHA256: sum}}
	m.mu.Unlock()
	m.log.Warn("recording end not stored yet; retrying while the store refuses writes", "recording", id, "err", err)
}

// forgetRow drops what is kept for a deleted recording.
func (m *Manager) forgetRow(id string) {
	m.mu.Lock()
	delete(m.rows, id)
	m.mu.Unlock()
}

// RowsPending returns how many recordings' rows wait for the store.
func (m *Manager) RowsPending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rows)
}

// syncRows writes the rows the store refused, each in the order its
// session needs them (created, then ended), and stops at the first
// failure: the store still refuses writes.
func (m *Manager) syncRows(ctx context.Context) error {
	m.mu.Lock()
	ids := make([]string, 0, len(m.rows))
	for id := range m.rows {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.mu.Lock()
		rs, ok := m.rows[id]
		var snap rowSync
		if ok {
			snap = *rs
		}
		m.mu.Unlock()
		if !ok {
			continue
		}
		if !snap.created {
			rec := snap.rec
			rec.State, rec.EndedAt, rec.Size, rec.SHA256 = store.RecordingActive, time.Time{}, 0, ""
			err := m.st.CreateRecording(ctx, rec)
			if err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
			m.mu.Lock()
			if cur, ok := m.rows[id]; ok {
				cur.created = true
			}
			m.mu.Unlock()
		}
		if snap.ended {
			err := m.st.FinishRecording(ctx, id, snap.rec.State, snap.rec.EndedAt, snap.rec.Size, snap.rec.SHA256)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		m.mu.Lock()
		// Done unless an end came while the row was being created: that
		// one is written next round.
		if cur, ok := m.rows[id]; ok && (snap.ended || !cur.ended) {
			delete(m.rows, id)
		}
		m.mu.Unlock()
	}
	return nil
}

// rowSyncer runs syncRows every rowRetry while rows wait, until ctx ends;
// then it tries once more, for at most drainTimeout. Rows still waiting
// then are logged: the next start does not know of them (their files
// stay in the recordings directory).
func (m *Manager) rowSyncer(ctx context.Context) {
	t := time.NewTicker(rowRetry)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			if m.RowsPending() > 0 {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
				err := m.syncRows(cctx)
				cancel()
				if n := m.RowsPending(); n > 0 {
					m.log.Error("recordings whose rows the store did not take before shutdown; their files are in the recordings directory",
						"recordings", n, "err", err)
				}
			}
			return
		case <-t.C:
		}
		if m.RowsPending() == 0 {
			continue
		}
		err := m.syncRows(ctx)
		if err == nil {
			m.refusing.Store(false)
		}
		switch {
		case err != nil && !failing:
			failing = true
			m.log.Warn("store still refuses recording rows; retrying", "waiting", m.RowsPending(), "err", err)
		case err == nil && failing:
			failing = false
			m.log.Info("recording rows stored")
		}
	}
}
