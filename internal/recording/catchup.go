package recording

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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
	// transaction), after which the progress is stored. 1 MiB costs the
	// same CPU per byte as 4 MiB (BenchmarkCatchUp) and holds SQLite's
	// single writer a quarter as long (about 0.2 s of `seq` output), which
	// a session starting meanwhile waits for.
	catchUpBatch = 1 << 20
	// catchUpPause is the least rest between two batches while sessions
	// are being recorded, so the live path gets the store first.
	catchUpPause = 50 * time.Millisecond
	// catchUpShare: while sessions are being recorded, the catch-up rests
	// after each batch so that it works at most about this share of the
	// time (its batch time, then catchUpRest). Indexing costs some fifty
	// times what recording does per byte, so at full speed it took a core
	// from the live sessions of a two-core gateway; it runs at full speed
	// when no session has been recorded for catchUpQuiet.
	catchUpShare = 0.1
	// catchUpQuiet: the catch-up keeps to catchUpShare until no session
	// has been recorded for this long, so that sessions in quick
	// succession (a script's) do not each leave it a window at full speed.
	catchUpQuiet = 5 * time.Second
	// catchUpFloodQuiet: while a session floods output (a recorder
	// buffers flushSoon before its next flush: several MB/s, `cat` of a
	// log, a build, `seq`), the catch-up does not start a batch at all,
	// until no flood has been seen for this long. Even its tenth of the
	// time was a fifth of the gateway's CPU beside such a session (make
	// bench's recorded seq runs), where recording itself is meant to cost
	// a few per cent. A flood is seconds to minutes; the backlog waits.
	catchUpFloodQuiet = time.Second
	// catchUpFloodPoll is how often a catch-up held by a flood looks again.
	catchUpFloodPoll = 250 * time.Millisecond
)

// catchUpRest returns how long the catch-up rests after a batch that took
// took, while recordings are being written (live) or not.
func catchUpRest(took time.Duration, live bool) time.Duration {
	if !live {
		return 0
	}
	return max(catchUpPause, time.Duration(float64(took)*(1-catchUpShare)/catchUpShare))
}

// pacer keeps the catch-up to catchUpShare across batches and across
// recordings: it rests before a recording's first batch too, after the
// last batch of whatever recording came before. Resting only between the
// batches of one recording let every recording that ended start with a
// batch at full speed, so a gateway recording sessions back to back ran
// the catch-up far above its share, beside the live sessions (and indexed
// text of recordings that were deleted a moment later).
type pacer struct {
	took time.Duration // the last batch's store time; 0 before the first
	// flooding reports a session flooding output (Manager.floodingLately);
	// nil for none.
	flooding func() bool
}

// rest waits as catchUpRest says after the last batch, and then for as
// long as a session floods output; it returns false if ctx ended first.
func (p *pacer) rest(ctx context.Context, live bool) bool {
	rest := catchUpRest(p.took, live)
	for {
		if rest > 0 {
			t := time.NewTimer(rest)
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return false
		}
		if p.flooding == nil || !p.flooding() {
			return true
		}
		rest = catchUpFloodPoll
	}
}

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
	p := pacer{flooding: m.floodingLately}
	for {
		m.catchUpBacklog(ctx, &p)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.catchKick:
		}
	}
}

// catchUpBacklog indexes every recording in the backlog, one at a time,
// and returns when it is empty, ctx ends or the store fails (the next round
// retries). It rests (p) before each recording and looks at the backlog
// again after the rest, so that a recording deleted meanwhile costs
// nothing.
func (m *Manager) catchUpBacklog(ctx context.Context, p *pacer) {
	next := func() (store.Recording, bool) {
		recs, err := m.st.IndexBacklog(ctx, m.gateway, 1)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("search index catch-up: backlog", "err", err)
			}
			return store.Recording{}, false
		}
		if len(recs) == 0 {
			return store.Recording{}, false
		}
		return recs[0], true
	}
	for ctx.Err() == nil {
		if _, ok := next(); !ok {
			return
		}
		if !p.rest(ctx, m.recordingLately()) {
			return
		}
		rec, ok := next()
		if !ok {
			return
		}
		if err := m.indexFile(ctx, rec, p); err != nil {
			if ctx.Err() == nil {
				m.log.Warn("search index catch-up", "recording", rec.ID, "err", err)
			}
			return
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
	return m.indexFile(ctx, rec, &pacer{})
}

// indexFile is IndexFile, resting between batches as p says.
func (m *Manager) indexFile(ctx context.Context, rec store.Recording, p *pacer) error {
	if err := checkID(rec.ID); err != nil {
		return m.st.SetRecordingIndex(ctx, rec.ID, store.IndexFailed, 0)
	}
	f, err := m.openFile(ctx, rec.ID)
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
	// One goroutine reads the file and extracts text while this one
	// commits the batch before: on two cores the terminal and the JSON
	// decoding then cost no wall time beside the store.
	pctx, cancel := context.WithCancel(ctx)
	batches := make(chan catchBatch, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(batches)
		// The reader waits out floods too: it runs ahead of the store
		// by two batches, and unpaced it read and extracted them beside
		// the next flooding session (make bench's recorded seq runs: up
		// to a fifth of the gateway's CPU, for text of a recording that
		// was deleted a moment later).
		hold := &pacer{flooding: p.flooding}
		extractBatches(pctx, m, rec.ID, rd, h, batches, func() bool { return hold.rest(pctx, false) })
	}()
	defer func() {
		cancel()
		for range batches { // let the reader see the cancel and end
		}
		<-done
	}()
	for b := range batches {
		start := time.Now()
		if b.damaged != nil {
			m.log.Warn("search index catch-up: the recording's file is damaged", "recording", rec.ID, "err", b.damaged)
		}
		if len(b.chunks) > 0 {
			if err := m.st.IndexText(ctx, b.chunks); err != nil {
				return fmt.Errorf("index recording %s from its file: %w", rec.ID, err)
			}
		}
		if err := m.st.SetRecordingIndex(ctx, rec.ID, b.state, b.off); err != nil {
			return fmt.Errorf("index recording %s from its file: %w", rec.ID, err)
		}
		p.took = time.Since(start)
		if b.state != store.IndexPartial {
			m.log.Info("recording indexed from its file", "recording", rec.ID, "state", b.state, "bytes", b.off)
			return nil
		}
		if !p.rest(ctx, m.recordingLately()) {
			return ctx.Err()
		}
	}
	return ctx.Err()
}

// catchBatch is text of a recording for one transaction, and the index
// state and file offset to store with it.
type catchBatch struct {
	chunks  []store.TextChunk
	state   string // IndexPartial while more follows
	off     int64
	damaged error // the file ended in a damaged line
}

// extractBatches reads rd's events and sends their text in batches of
// about catchUpBatch, the last one with its final state, until the file
// ends or ctx does. Before each event it calls wait, which returns false
// if ctx ended while it waited.
func extractBatches(ctx context.Context, m *Manager, id string, rd *Reader, h Header, out chan<- catchBatch, wait func() bool) {
	var x textIndexer
	x.init(id, h.Width, h.Height, h.Env["TERM"] != "")
	x.unlimited = true
	var b catchBatch
	size := 0
	send := func() bool {
		select {
		case out <- b:
			b, size = catchBatch{}, 0
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		if !wait() {
			return
		}
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A torn or damaged line: what came before is indexed; the
			// rest cannot be read.
			b.chunks = append(b.chunks, x.take(time.Time{}, true)...)
			b.state, b.off, b.damaged = store.IndexFailed, rd.off, err
			send()
			return
		}
		switch ev.Type {
		case "o":
			if data := []byte(ev.Data); !isBinary(data) {
				x.now = time.Now()
				x.feed(int64(ev.Time*1e6), data)
			}
		case "r":
			x.resize([]byte(ev.Data))
		}
		for _, c := range x.take(time.Time{}, false) {
			b.chunks = append(b.chunks, c)
			size += len(c.Text)
		}
		if size >= catchUpBatch {
			// Whole lines only in what is committed: the chunk being
			// filled goes with this batch.
			x.push()
			b.chunks = append(b.chunks, x.take(time.Time{}, false)...)
			b.state, b.off = store.IndexPartial, rd.off
			if !send() {
				return
			}
		}
	}
	b.chunks = append(b.chunks, x.take(time.Time{}, true)...)
	b.state, b.off = store.IndexComplete, rd.off
	send()
}
