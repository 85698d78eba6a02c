package recording

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// Recorder records one session. Output, Input and Resize are called from the
// session's goroutines and only copy into a buffer; the Manager's Run writes
// it out. A nil *Recorder does nothing, so a caller can hold one for an
// unrecorded session.
//
// The lifecycle is: Manager.Start, any number of Output/Input/Resize calls,
// Close. Manager.Delete may cut it short at any point.
type Recorder struct {
	m     *Manager
	meta  Meta
	path  string
	start time.Time
	// fileOps: a file-transfer recording, which holds the operations
	// FileOp records and nothing of what crosses the channel.
	fileOps bool
	// done is closed when the recording has ended (after its last write)
	// or was deleted; Follow waits on it.
	done     chan struct{}
	doneOnce sync.Once

	// Lock order: closeMu, fmu, imu, mu.

	// mu guards the session-side state below. It is held only to append
	// to or swap the buffer, never during I/O, so Output never waits on
	// the disk.
	mu      sync.Mutex
	pending []*[]byte     // raw events since the last flush, in blocks (see add); nil when idle
	pendLen int           // bytes in pending
	dropped int64         // output left out (pending was full) and not yet marked in pending
	kicked  bool          // Run was asked to flush early since the last flush
	stopped bool          // closed or deleted: Output and friends do nothing
	wake    chan struct{} // closed at the next write, for Follow; nil if nobody waits

	// fmu serializes flushes (Run's and Close's) and Delete; it guards w.
	fmu sync.Mutex
	w   writer

	// imu is held across IndexText, so that once Delete has set deleted
	// no more text of the recording reaches the store.
	imu     sync.Mutex
	deleted atomic.Bool // set under fmu and imu

	closeMu sync.Mutex // serializes Close; guards closed and the results
	closed  bool
	size    int64
	sum     string
	err     error

	failed atomic.Bool // a failure was reported (OnFailure is called once)
	// indexGap is set when text was left out of the search index (a
	// store error, a queue that was full): the index is derived data, so
	// this never ends the session; the recording is indexed again from
	// its file once it has ended.
	indexGap atomic.Bool
	// flushed is w.off as of the last write: the shipper (ship.go) reads
	// the file up to it without waiting on fmu.
	flushed atomic.Int64
	// lostBytes is w.gap.Bytes as of the last flush, for listing live
	// sessions without waiting on a flush (fmu) stuck on a slow disk.
	lostBytes atomic.Int64
}

// writer is the flusher's state of one recording.
type writer struct {
	f       *os.File // nil once closed or deleted
	off     int64    // bytes written: the file ends with a whole line there
	hash    hash.Hash
	hashBad bool        // a write failed part way: hash the file at the end
	out, in carry       // characters split between events, per stream
	lastOut int64       // time of the last "o" event, µs
	burst   burst       // binary output bounding
	text    textIndexer // search index feed
	lost    int64       // output not written and not yet marked in the file
	lostWhy string
	err     error // first write error
	gap     Gap   // all output lost so far, marked or not
}

// Gap is the output a recording lost (a failed write, a full disk, the
// recorder falling behind): how many bytes, and from when to when in the
// session. A recording with a gap is stored as store.RecordingIncomplete.
type Gap struct {
	Bytes    int64
	From, To time.Duration // since the recording's start
}

// add widens g by n bytes lost between from and to (µs since the start).
func (g *Gap) add(n, from, to int64) {
	if n <= 0 {
		return
	}
	f, t := time.Duration(from)*time.Microsecond, time.Duration(max(to, from))*time.Microsecond
	if g.Bytes == 0 || f < g.From {
		g.From = f
	}
	g.To = max(g.To, t)
	g.Bytes += n
}

// Raw events in a pending buffer are a 13-byte head (type, time in µs as
// uint64, length as uint32, little-endian) followed by the data: Output
// only copies; the flusher encodes.
const recHead = 13

// bufPool holds encoding buffers, so that a recorder keeps no buffer
// between flushes (memory per idle session matters) and a busy one does not
// reallocate its buffer at every flush.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 64<<10)
	return &b
}}

// maxPooled: larger buffers (a burst that outran the flusher) are left to
// the garbage collector rather than pinned in the pool.
const maxPooled = 2 * flushSoon

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// Pending output is kept in fixed-size blocks rather than one growing
// slice: a slice that grows by doubling copies everything again and again
// while the flusher lags (measured: a quarter of the gateway's CPU on
// `seq` output), where a new block costs one allocation and no copy. An
// event never spans two blocks.
const blockSize = 1 << 20

// encodeChunk bounds the encoded bytes held before a write.
const encodeChunk = 1 << 20

var blockPool = sync.Pool{New: func() any {
	b := make([]byte, 0, blockSize)
	return &b
}}

func putBlocks(blocks []*[]byte) {
	for _, b := range blocks {
		*b = (*b)[:0]
		blockPool.Put(b)
	}
}

// block returns the block to append an event of n bytes (head included)
// to, starting a new one when the last is too full. mu must be held.
func (r *Recorder) block(n int) *[]byte {
	if k := len(r.pending); k > 0 {
		if last := r.pending[k-1]; cap(*last)-len(*last) >= n {
			return last
		}
	}
	b := blockPool.Get().(*[]byte)
	if cap(*b) < n {
		nb := make([]byte, 0, max(n, blockSize))
		b = &nb
	}
	r.pending = append(r.pending, b)
	return b
}

// Output records output to the user's terminal (an "o" event). It copies p
// into a buffer and returns; it never does I/O. A file-transfer recording
// ignores it: the bytes of a transfer are file contents, which the
// recording must not hold (FileOp records what they did).
func (r *Recorder) Output(p []byte) {
	if r != nil && !r.fileOps {
		r.add('o', p)
	}
}

// Input records what the user typed (an "i" event) if Meta.RecordInput is
// set, and otherwise does nothing; a file-transfer recording ignores it too.
func (r *Recorder) Input(p []byte) {
	if r != nil && r.meta.RecordInput && !r.fileOps {
		r.add('i', p)
	}
}

// Resize records a window change (an "r" event).
func (r *Recorder) Resize(cols, rows int) {
	if r == nil || r.fileOps || cols <= 0 || rows <= 0 || cols > 1<<16 || rows > 1<<16 {
		return
	}
	var b [24]byte
	d := strconv.AppendInt(b[:0], int64(cols), 10)
	d = append(d, 'x')
	d = strconv.AppendInt(d, int64(rows), 10)
	r.add('r', d)
}

// add appends p as events of type typ, split into pieces of at most
// maxEventData so that every line of the file stays bounded.
func (r *Recorder) add(typ byte, p []byte) {
	if len(p) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if r.pendLen+len(p)+recHead*(len(p)/maxEventData+2) > r.m.maxPending {
		r.dropped += int64(len(p))
		r.kickLocked()
		return
	}
	// The clock is read under mu so that events are in time order even
	// when stdout and stderr are copied by two goroutines.
	us := r.since(r.m.now())
	if r.dropped > 0 {
		// Mark where output was left out, in order.
		bp := r.block(recHead + 8)
		b := *bp
		b = append(b, 'd')
		b = binary.LittleEndian.AppendUint64(b, uint64(us))
		b = binary.LittleEndian.AppendUint32(b, 8)
		b = binary.LittleEndian.AppendUint64(b, uint64(r.dropped))
		*bp = b
		r.pendLen += recHead + 8
		r.dropped = 0
	}
	for len(p) > 0 {
		n := min(len(p), maxEventData)
		bp := r.block(recHead + n)
		b := *bp
		b = append(b, typ)
		b = binary.LittleEndian.AppendUint64(b, uint64(us))
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
		b = append(b, p[:n]...)
		*bp = b
		r.pendLen += recHead + n
		p = p[n:]
	}
	if r.pendLen >= flushSoon {
		if !r.kicked {
			r.m.lastFlood.Store(r.m.now().UnixNano())
		}
		r.kickLocked()
	}
}

// kickLocked asks Run to flush now, once per flush.
func (r *Recorder) kickLocked() {
	if r.kicked {
		return
	}
	r.kicked = true
	select {
	case r.m.kick <- struct{}{}:
	default: // a flush is already due
	}
}

// since returns the time of t in the recording, in microseconds.
func (r *Recorder) since(t time.Time) int64 {
	return max(t.Sub(r.start).Microseconds(), 0)
}

// flush writes what is buffered and returns text for the index.
func (r *Recorder) flush() ([]store.TextChunk, error) {
	r.fmu.Lock()
	defer r.fmu.Unlock()
	return r.flushLocked(false)
}

// flushLocked encodes the buffered events, writes them in one write, and
// feeds the text extractor. final ends bursts and split characters. fmu
// must be held.
func (r *Recorder) flushLocked(final bool) ([]store.TextChunk, error) {
	r.mu.Lock()
	blocks, dropped := r.pending, r.dropped
	r.pending, r.pendLen, r.dropped, r.kicked = nil, 0, 0, false
	if final {
		r.stopped = true
	}
	r.mu.Unlock()
	defer putBlocks(blocks)
	w := &r.w
	if w.f == nil {
		return nil, nil
	}
	now := r.m.now()
	nowUs := r.since(now)
	w.text.refill(now)
	w.text.plan(outputIn(blocks))

	ob := getBuf()
	defer putBuf(ob)
	out := (*ob)[:0]
	var errs []error
	// Output a failed write lost is marked first, where it was lost.
	var marked int64
	if w.lost > 0 {
		t := nowUs
		if len(blocks) > 0 && len(*blocks[0]) >= recHead {
			t = int64(binary.LittleEndian.Uint64((*blocks[0])[1:]))
		}
		out = r.writeLost(out, t, w.lost, w.lostWhy)
		marked = w.lost
	}
	var rawOut int64
	var pieceFrom int64 = -1 // time of the first output in the piece being encoded
	failed := false
	// emit writes what is encoded so far. A large flush is written in
	// pieces of about encodeChunk, each ending on an event, so the encode
	// buffer stays bounded and the file stays valid between pieces.
	emit := func() {
		if len(out) == 0 {
			return
		}
		if werr := r.write(out); werr != nil {
			failed = true
			if pieceFrom < 0 {
				pieceFrom = nowUs
			}
			w.gap.add(rawOut, pieceFrom, nowUs)
			w.lost += rawOut
			w.lostWhy = "write error: " + werr.Error()
			if w.err == nil {
				w.err = werr
			}
			errs = append(errs, werr)
		} else {
			w.lost -= marked
			if w.lost == 0 {
				w.lostWhy = ""
			}
		}
		out, rawOut, marked, pieceFrom = out[:0], 0, 0, -1
	}
	for _, bp := range blocks {
		raw := *bp
		for len(raw) >= recHead {
			typ := raw[0]
			t := int64(binary.LittleEndian.Uint64(raw[1:]))
			n := int(binary.LittleEndian.Uint32(raw[9:]))
			data := raw[recHead : recHead+n]
			raw = raw[recHead+n:]
			switch typ {
			case 'o':
				if pieceFrom < 0 {
					pieceFrom = t
				}
				rawOut += int64(n)
				out = r.writeOutput(out, t, data)
			case 'i':
				out = r.writeOther(out, t, 'i', data)
			case 'r':
				out = r.writeOther(out, t, 'r', data)
			case 'd':
				n := int64(binary.LittleEndian.Uint64(data))
				w.gap.add(n, t, t)
				out = r.writeLost(out, t, n, overrunWhy)
				errs = append(errs, r.overrun(n))
			}
			if len(out) >= encodeChunk && !failed {
				emit()
			}
		}
	}
	if dropped > 0 {
		w.gap.add(dropped, nowUs, nowUs)
		out = r.writeLost(out, nowUs, dropped, overrunWhy)
		errs = append(errs, r.overrun(dropped))
	}
	if w.burst.on && (final || nowUs-w.lastOut >= burstPause) {
		out = r.endBurst(out)
	}
	if final {
		out = flushCarry(out, nowUs, 'o', &w.out)
		out = flushCarry(out, nowUs, 'i', &w.in)
	}
	emit()
	r.lostBytes.Store(w.gap.Bytes)
	*ob = out // return a grown buffer to the pool, not the small one
	return w.text.take(now, final), errors.Join(errs...)
}

// outputIn returns the bytes of output ("o" events) in blocks: only their
// heads are read.
func outputIn(blocks []*[]byte) int {
	n := 0
	for _, bp := range blocks {
		for raw := *bp; len(raw) >= recHead; {
			k := int(binary.LittleEndian.Uint32(raw[9:]))
			if raw[0] == 'o' {
				n += k
			}
			raw = raw[recHead+k:]
		}
	}
	return n
}

// overrunWhy is the marker's reason when output was left out because the
// flusher fell behind.
const overrunWhy = "the recording fell behind"

func (r *Recorder) overrun(n int64) error {
	return fmt.Errorf("recording %s fell behind the session: %d bytes of output not recorded", r.meta.ID, n)
}

// writeLost appends a marker saying n bytes of output are not in the file.
func (r *Recorder) writeLost(out []byte, t, n int64, why string) []byte {
	w := &r.w
	out = r.endBurst(out) // after what was held, to stay in order
	out = flushCarry(out, t, 'o', &w.out)
	msg := fmt.Appendf(nil, "\r\n[portcullis: %d bytes of output not recorded: %s]\r\n", n, why)
	out, _ = appendEvent(out, t, 'o', nil, msg)
	return out
}

// write appends p, whole lines, at the end of the file. On an error it cuts
// what part of p was written, so that the file still ends with a whole
// event and the next write goes on from there.
func (r *Recorder) write(p []byte) error {
	w := &r.w
	n, err := w.f.WriteAt(p, w.off)
	if err != nil {
		if n > 0 {
			if terr := w.f.Truncate(w.off); terr != nil {
				w.hashBad = true
			}
		}
		return fmt.Errorf("write recording %s: %w", r.meta.ID, err)
	}
	w.hash.Write(p)
	w.off += int64(n)
	r.flushed.Store(w.off)
	r.mu.Lock()
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
	r.mu.Unlock()
	return nil
}

// waitWrite returns a channel closed after the next write.
func (r *Recorder) waitWrite() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wake == nil {
		r.wake = make(chan struct{})
	}
	return r.wake
}

// writeOther encodes an "i" or "r" event, behind a binary burst's held
// tail if there is one, so that the file stays in time order.
func (r *Recorder) writeOther(out []byte, t int64, typ byte, data []byte) []byte {
	w := &r.w
	if w.burst.holding() {
		w.burst.pushMeta(t, typ, data)
		if w.burst.metaSize > burstMeta {
			out = r.endBurst(out)
		}
		return out
	}
	if typ == 'r' {
		w.text.resize(data)
		out, _ = appendEvent(out, t, 'r', nil, data)
		return out
	}
	out, _ = appendEvent(out, t, 'i', &w.in, data)
	return out
}

// index sends text to the store unless the recording was deleted.
func (r *Recorder) index(ctx context.Context, chunks []store.TextChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	r.imu.Lock()
	defer r.imu.Unlock()
	if r.deleted.Load() {
		return nil
	}
	if err := r.m.st.IndexText(ctx, chunks); err != nil {
		return fmt.Errorf("index text of recording %s: %w", r.meta.ID, err)
	}
	return nil
}

// report logs a failure and tells the session's owner, once.
func (r *Recorder) report(err error) {
	if r.deleted.Load() {
		return
	}
	if !r.failed.CompareAndSwap(false, true) {
		r.m.log.Debug("recording failure", "recording", r.meta.ID, "err", err)
		return
	}
	r.m.log.Error("recording failure", "recording", r.meta.ID, "err", err)
	if r.meta.OnFailure != nil {
		r.meta.OnFailure(err)
	}
}

// indexFailed notes text that did not reach the search index. It is
// logged once per recording and never reported as a recording failure:
// the file is complete, and the index catches up from it later.
func (r *Recorder) indexFailed(err error) {
	if r.deleted.Load() {
		return
	}
	if r.indexGap.Swap(true) {
		r.m.log.Debug("search index failure", "recording", r.meta.ID, "err", err)
		return
	}
	r.m.log.Warn("search index failure; the recording is indexed from its file after it ends", "recording", r.meta.ID, "err", err)
}

func (r *Recorder) endDone() { r.doneOnce.Do(func() { close(r.done) }) }

// Close ends the recording: it writes what is buffered, syncs and closes the
// file, indexes the last text, and stores the recording as ended with the
// file's size and SHA-256 (hex), which it returns. A store that refuses
// the index or the end is no error of the recording's: the end is stored
// when the store takes writes again, the text indexed from the file. It returns the same
// again if called again. If the recording was deleted it returns
// ErrDeleted. ctx bounds the store calls.
func (r *Recorder) Close(ctx context.Context) (size int64, sha256hex string, err error) {
	if r == nil {
		return 0, "", nil
	}
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.closed {
		return r.size, r.sum, r.err
	}
	r.closed = true
	r.fmu.Lock()
	if r.deleted.Load() {
		r.fmu.Unlock()
		r.err = fmt.Errorf("close recording %s: %w", r.meta.ID, ErrDeleted)
		return 0, "", r.err
	}
	chunks, ferr := r.flushLocked(true)
	size, sum, cerr := r.finishFile()
	skipped := r.w.text.skipped
	state, gap := store.RecordingEnded, r.w.gap
	if gap.Bytes > 0 {
		state = store.RecordingIncomplete
	}
	r.fmu.Unlock()
	r.m.remove(r)
	r.endDone()
	if err := r.index(ctx, chunks); err != nil {
		r.indexFailed(err)
	}
	// The index state goes before the end: the catch-up takes only ended
	// recordings, and one whose state could not be stored stays live,
	// which the catch-up takes too (indexing it again is only work).
	idx := store.IndexComplete
	if skipped || r.indexGap.Load() {
		idx = store.IndexPartial
	}
	if err := r.m.st.SetRecordingIndex(ctx, r.meta.ID, idx, 0); err != nil {
		r.m.log.Debug("index state not stored; the catch-up indexes the recording from its file", "recording", r.meta.ID, "err", err)
		idx = store.IndexPartial
	}
	// The end is stored now or, while the store refuses writes, later:
	// the session never ends up listed as active for ever.
	r.m.finishRow(ctx, r.meta.ID, state, r.m.now(), size, sum)
	r.m.shipEnded(r.meta.ID)
	if g := gap; g.Bytes > 0 {
		// For the listing; session.end carries the same in the audit
		// trail, which is what counts if the store refuses this.
		if err := r.m.st.SetRecordingGap(ctx, r.meta.ID, g.Bytes, g.From, g.To); err != nil {
			r.m.log.Warn("recording gap not stored; the session.end event has it", "recording", r.meta.ID, "err", err)
		}
	}
	if idx == store.IndexPartial {
		r.m.kickCatchUp()
	}
	r.size, r.sum, r.err = size, sum, errors.Join(ferr, cerr)
	return r.size, r.sum, r.err
}

// Gap returns the output the recording lost so far; Bytes is 0 when it
// lost none. After Close it is final.
func (r *Recorder) Gap() Gap {
	if r == nil {
		return Gap{}
	}
	r.fmu.Lock()
	defer r.fmu.Unlock()
	return r.w.gap
}

// finishFile syncs and closes the file and returns its size and SHA-256.
// fmu must be held.
func (r *Recorder) finishFile() (int64, string, error) {
	w := &r.w
	f := w.f
	w.f = nil
	w.burst.release()
	var errs []error
	if w.err != nil {
		// A failed write may have left a torn line that a later write did
		// not cover.
		if err := f.Truncate(w.off); err != nil {
			errs = append(errs, fmt.Errorf("close recording %s: %w", r.meta.ID, err))
		}
	}
	if err := f.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("close recording %s: sync: %w", r.meta.ID, err))
	}
	if err := f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close recording %s: %w", r.meta.ID, err))
	}
	size, sum := w.off, hex.EncodeToString(w.hash.Sum(nil))
	if w.hashBad || w.err != nil {
		s, h, err := hashFile(r.path)
		if err != nil {
			errs = append(errs, fmt.Errorf("close recording %s: %w", r.meta.ID, err))
		} else {
			size, sum = s, h
		}
	}
	return size, sum, errors.Join(errs...)
}

// kill stops a recording that is being deleted: nothing more is written or
// indexed, and Follow ends.
func (r *Recorder) kill() {
	r.fmu.Lock()
	r.imu.Lock()
	r.deleted.Store(true)
	r.imu.Unlock()
	r.mu.Lock()
	r.stopped = true
	blocks := r.pending
	r.pending, r.pendLen = nil, 0
	r.mu.Unlock()
	putBlocks(blocks)
	if r.w.f != nil {
		_ = r.w.f.Close()
		r.w.f = nil
	}
	r.w.burst.release()
	r.fmu.Unlock()
	r.endDone()
}

// hashFile returns the size and hex SHA-256 of a file.
func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		return 0, "", fmt.Errorf("hash %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
