package recording

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// The catch-up indexes, from their files, the ended recordings whose
// index misses text: the live budget skipped part of a flood, or the store
// refused some text. It is one goroutine owned by Run, one recording and
// one batch at a time, so its cost is bounded whatever the backlog.
const (
	// catchUpPoll is how often the backlog is looked at when nothing
	// asked sooner (a session ending with a gap asks at once).
	catchUpPoll = 10 * time.Second
	// catchUpBatch is the text sent to the store per IndexText call (one
	// transaction), after which the progress is stored.
	catchUpBatch = 4 << 20
	// catchUpPause is the rest between two batches while sessions are
	// being recorded, so the live path gets the store first.
	catchUpPause = 50 * time.Millisecond
)

// kickCatchUp asks the catch-up to look at the backlog now.
func (m *Manager) kickCatchUp() {
	select {
	case m.catchKick <- struct{}{}:
	default:
	}
}

// catchUp indexes the backlog until ctx ends.
func (m *Manager) catchUp(ctx context.Context) {
	t := time.NewTicker(catchUpPoll)
	defer t.Stop()
	for {
		m.catchUpBacklog(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.catchKick:
		}
	}
}

// catchUpBacklog indexes every recording in the backlog, and returns when
// it is empty, ctx ends or the store fails (the next round retries).
func (m *Manager) catchUpBacklog(ctx context.Context) {
	for ctx.Err() == nil {
		recs, err := m.st.IndexBacklog(ctx, m.gateway, 16)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("search index catch-up: backlog", "err", err)
			}
			return
		}
		if len(recs) == 0 {
			return
		}
		for _, rec := range recs {
			if err := m.IndexFile(ctx, rec); err != nil {
				if ctx.Err() == nil {
					m.log.Warn("search index catch-up", "recording", rec.ID, "err", err)
				}
				return
			}
		}
	}
}

// IndexFile indexes an ended recording from its file, from rec.IndexOffset
// (or from the start, after removing what the live path indexed, when it
// is 0), without a budget, and stores it as complete. Progress is stored
// after each batch, so that a restart resumes there; a line that a restart
// cuts in two is indexed in two halves. A file that cannot be read is
// stored as failed; only store errors are returned.
func (m *Manager) IndexFile(ctx context.Context, rec store.Recording) error {
	path, err := m.path(rec.ID)
	if err != nil {
		return m.st.SetRecordingIndex(ctx, rec.ID, store.IndexFailed, 0)
	}
	f, err := os.Open(path)
	if err != nil {
		m.log.Warn("search index catch-up: the recording's file cannot be read", "recording", rec.ID, "err", err)
		return m.st.SetRecordingIndex(ctx, rec.ID, store.IndexFailed, rec.IndexOffset)
	}
	defer f.Close()
	rd, err := NewReader(f)
	if err != nil {
		m.log.Warn("search index catch-up: the recording's file is not a recording", "recording", rec.ID, "err", err)
		return m.st.SetRecordingIndex(ctx, rec.ID, store.IndexFailed, rec.IndexOffset)
	}
	h := rd.Header()
	if rec.IndexOffset > 0 {
		if _, err := f.Seek(rec.IndexOffset, io.SeekStart); err != nil {
			return m.st.SetRecordingIndex(ctx, rec.ID, store.IndexFailed, rec.IndexOffset)
		}
		rd = &Reader{br: bufio.NewReaderSize(f, 64<<10), header: h, off: rec.IndexOffset}
	} else if err := m.st.DeleteRecordingText(ctx, rec.ID); err != nil {
		return err
	}
	var x textIndexer
	x.init(rec.ID, h.Width, h.Height, h.Env["TERM"] != "")
	x.unlimited = true
	var (
		batch     []store.TextChunk
		batchSize int
	)
	commit := func(state string, off int64) error {
		if len(batch) > 0 {
			if err := m.st.IndexText(ctx, batch); err != nil {
				return err
			}
		}
		batch, batchSize = batch[:0], 0
		return m.st.SetRecordingIndex(ctx, rec.ID, state, off)
	}
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A torn or damaged line: what came before is indexed; the
			// rest cannot be read.
			m.log.Warn("search index catch-up: the recording's file is damaged", "recording", rec.ID, "err", err)
			if cerr := commit(store.IndexFailed, rd.off); cerr != nil {
				return cerr
			}
			return nil
		}
		us := int64(ev.Time * 1e6)
		switch ev.Type {
		case "o":
			if data := []byte(ev.Data); !classify(data).binary(len(data)) {
				x.now = time.Now()
				x.feed(us, data)
			}
		case "r":
			x.resize([]byte(ev.Data))
		}
		for _, c := range x.take(time.Time{}, false) {
			batch = append(batch, c)
			batchSize += len(c.Text)
		}
		if batchSize >= catchUpBatch {
			// Whole lines only in what is committed: the chunk being
			// filled goes with this batch.
			x.push()
			for _, c := range x.take(time.Time{}, false) {
				batch = append(batch, c)
			}
			if err := commit(store.IndexPartial, rd.off); err != nil {
				return err
			}
			if len(m.Active()) > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(catchUpPause):
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	for _, c := range x.take(time.Time{}, true) {
		batch = append(batch, c)
	}
	if err := commit(store.IndexComplete, rd.off); err != nil {
		return fmt.Errorf("index recording %s from its file: %w", rec.ID, err)
	}
	m.log.Info("recording indexed from its file", "recording", rec.ID, "bytes", rd.off)
	return nil
}
