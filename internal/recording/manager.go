package recording

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// Timing and size limits. See the package doc for what they mean to users.
const (
	// flushInterval is how often Run writes buffered events: the SIGKILL
	// bound (an event waits at most this long, plus one write).
	flushInterval = 500 * time.Millisecond
	// flushSoon is the buffered size at which Output asks the flusher to
	// write before the next tick, so bulk output does not pile up.
	flushSoon = 4 << 20
	// maxPending is the most a recorder buffers: beyond it the flusher is
	// not keeping up (a slow or stuck disk) and output is left out rather
	// than held without bound or blocking the session.
	maxPending = 64 << 20
	// indexQueue is how many index batches may wait for the store.
	indexQueue = 1024
	// indexTimeout bounds one IndexText call.
	indexTimeout = 10 * time.Second
	// drainTimeout bounds indexing what is left once Run's context ends.
	drainTimeout = 5 * time.Second
)

// errStoreRefusing stands for a store write not tried because the last
// ones failed.
var errStoreRefusing = errors.New("the store refuses writes; not tried again until it takes the waiting rows")

// ErrDeleted is returned by Recorder.Close when the recording was deleted
// while it ran.
var ErrDeleted = errors.New("recording was deleted")

// Meta describes the session being recorded. It goes into the file's header
// and the store.
type Meta struct {
	// ID is the session id, also the file name ID.cast: letters, digits,
	// '.', '_' and '-', not starting with '.'.
	ID      string
	User    string // gateway identity
	Target  string
	Account string // target user
	Source  string // client address
	Action  string // shell, exec or file-transfer (recorded as file operations: see FileOp)
	Command string // for exec and file-transfer
	// Width and Height are the terminal size (80x24 if zero). Term is
	// $TERM if the client asked for a pty; empty means no pty (an exec
	// without -t), whose lines end in a bare LF.
	Width, Height int
	Term          string
	// RecordInput records what the user types ("i" events).
	RecordInput bool
	// Protocol is the front the session came through when it is not SSH
	// ("kubernetes"), and Kube what a Kubernetes exec or attach ran in;
	// both go into the header only.
	Protocol string
	Kube     *KubeMeta
	// OnFailure, if set, is called once, from one of Run's goroutines, with
	// the first error writing the file or the store while the session runs,
	// so the gateway can end a session whose policy says
	// on_failure: terminate. It should return quickly (it holds up other
	// recordings' flushes); it may call Close. Errors in Close are returned
	// by Close instead.
	OnFailure func(error)
}

// KubeMeta is where a Kubernetes exec or attach ran, and the cluster
// identity the gateway impersonated for it (Meta.Account is the cluster
// user).
type KubeMeta struct {
	Namespace     string   `json:"namespace"`
	Pod           string   `json:"pod"`
	Container     string   `json:"container,omitempty"`
	ClusterGroups []string `json:"cluster_groups,omitempty"`
}

// Manager owns a directory of recordings and the one goroutine (Run) that
// writes all of them.
type Manager struct {
	dir string
	st  store.Store
	log *slog.Logger
	// gateway is the id SetGateway set: put on every recording Start
	// stores, and the only recordings Recover closes.
	gateway string

	// now, interval and maxPending are the clock, the flush period and
	// the buffer limit; tests change them.
	now        func() time.Time
	interval   time.Duration
	maxPending int

	// kick asks Run to flush before the next tick (an Output buffer grew
	// past flushSoon).
	kick chan struct{}
	// catchKick asks the catch-up (catchup.go) to look at the backlog.
	catchKick chan struct{}

	mu     sync.Mutex
	active map[string]*Recorder
	rows   map[string]*rowSync // rows the store has not taken yet (rowsync.go)
	// refusing is set while the store refuses recording rows: Start then
	// leaves the row to the retry loop at once rather than wait the
	// store's lock timeout on every new session.
	refusing atomic.Bool
	// shipDeps: recordings in an object store (ship.go); lock order
	// shipMu, then mu.
	shipDeps

	// lastEnd is when a recording last stopped being written (UnixNano
	// of m.now): the catch-up keeps yielding for catchUpQuiet after it,
	// so that sessions in quick succession count as busy.
	lastEnd atomic.Int64
	// lastFlood is when a recorder last buffered flushSoon between two
	// flushes (UnixNano of m.now): output at several MB/s, during which
	// the catch-up does not run at all (catchup.go).
	lastFlood atomic.Int64
}

// NewManager returns a Manager for recordings in dir, creating it (mode
// 0700) if needed. Call SetGateway if the store is shared, then Recover,
// then Run, before recording.
func NewManager(dir string, st store.Store, log *slog.Logger) (*Manager, error) {
	if dir == "" {
		return nil, errors.New("recordings: no directory configured")
	}
	if st == nil {
		return nil, errors.New("recordings: no store")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("recordings directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create recordings directory: %w", err)
	}
	return &Manager{
		dir: abs, st: st, log: log,
		now: time.Now, interval: flushInterval, maxPending: maxPending, shipDeps: shipDeps{shipEvery: shipEvery},
		kick:      make(chan struct{}, 1),
		catchKick: make(chan struct{}, 1),
		active:    make(map[string]*Recorder),
		rows:      make(map[string]*rowSync),
	}, nil
}

// SetGateway sets the id of the gateway this Manager records for. Every
// recording Start stores carries it (store.Recording.Gateway), and Recover
// closes only recordings that carry it, so that a gateway restarting on a
// database other gateways share leaves the recordings they are writing
// alone. Call it before Recover and Start, and not again: it is not
// synchronized with them. Without it the id is "", which is also the id of
// recordings stored before gateways had ids.
func (m *Manager) SetGateway(id string) { m.gateway = id }

// Dir returns the absolute path of the recordings directory.
func (m *Manager) Dir() string { return m.dir }

// path returns the file of recording id, after checking that id is a plain
// file name (it comes from the API for Open and Delete).
func (m *Manager) path(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	return filepath.Join(m.dir, id+".cast"), nil
}

func checkID(id string) error {
	if id == "" || len(id) > 128 || id[0] == '.' {
		return fmt.Errorf("bad recording id %q", id)
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("bad recording id %q", id)
		}
	}
	return nil
}

// Active returns the ids of the recordings being written, sorted.
func (m *Manager) Active() []string {
	m.mu.Lock()
	ids := make([]string, 0, len(m.active))
	for id := range m.active {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// Incomplete returns the ids, among the recordings being written, of
// those that lost output so far (a write error, a full disk): a live
// listing must not call them recorded.
func (m *Manager) Incomplete() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for id, r := range m.active {
		if r.lostBytes.Load() > 0 {
			out[id] = true
		}
	}
	return out
}

func (m *Manager) lookup(id string) *Recorder {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.active[id]
}

// remove drops r from the active set if it is still there.
func (m *Manager) remove(r *Recorder) {
	m.mu.Lock()
	if m.active[r.meta.ID] == r {
		delete(m.active, r.meta.ID)
		m.lastEnd.Store(m.now().UnixNano())
	}
	m.mu.Unlock()
}

// recordingLately reports whether a session is being recorded, or one
// stopped less than catchUpQuiet ago.
func (m *Manager) recordingLately() bool {
	m.mu.Lock()
	n := len(m.active)
	m.mu.Unlock()
	return n > 0 || m.now().Sub(time.Unix(0, m.lastEnd.Load())) < catchUpQuiet
}

// floodingLately reports whether a session flooded output less than
// catchUpFloodQuiet ago.
func (m *Manager) floodingLately() bool {
	last := m.lastFlood.Load()
	return last != 0 && m.now().Sub(time.Unix(0, last)) < catchUpFloodQuiet
}

// Start begins recording a session: it creates ID.cast (exclusively, mode
// 0600), writes and syncs the header, and stores the recording as active.
// ctx bounds only the setup; the recording runs until Close or Delete.
func (m *Manager) Start(ctx context.Context, meta Meta) (*Recorder, error) {
	path, err := m.path(meta.ID)
	if err != nil {
		return nil, fmt.Errorf("start recording: %w", err)
	}
	if meta.Width <= 0 || meta.Height <= 0 {
		meta.Width, meta.Height = 80, 24
	}
	start := m.now()
	hdr, err := encodeHeader(meta, start.Unix())
	if err != nil {
		return nil, fmt.Errorf("start recording %s: %w", meta.ID, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start recording %s: %w", meta.ID, err)
	}
	r := &Recorder{m: m, meta: meta, path: path, start: start, done: make(chan struct{}),
		fileOps: Kind(meta.Action) == KindFileTransfer}
	r.w.f = f
	r.w.hash = sha256.New()
	r.w.text.init(meta.ID, meta.Width, meta.Height, meta.Term != "")
	fail := func(err error) (*Recorder, error) {
		m.remove(r)
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("start recording %s: %w", meta.ID, err)
	}
	if _, err := f.Write(hdr); err != nil {
		return fail(err)
	}
	// The header is synced so that a recording the store knows about
	// always has one, whatever happens to the machine next.
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	r.w.hash.Write(hdr)
	r.w.off = int64(len(hdr))
	r.flushed.Store(r.w.off)
	m.mu.Lock()
	_, dup := m.active[meta.ID]
	if !dup {
		m.active[meta.ID] = r
	}
	m.mu.Unlock()
	if dup {
		// Only if the other recording's file was removed behind its back.
		return fail(errors.New("already being recorded"))
	}
	row := store.Recording{
		ID: meta.ID, User: meta.User, Target: meta.Target, Account: meta.Account, Source: meta.Source,
		Action: meta.Action, Command: meta.Command, StartedAt: start.UTC(), State: store.RecordingActive,
		Gateway: m.gateway,
	}
	err = errStoreRefusing
	if !m.refusing.Load() {
		err = m.st.CreateRecording(ctx, row)
	}
	if errors.Is(err, store.ErrConflict) {
		return fail(err)
	}
	if err != nil {
		// The store refuses writes: the recording is its file, already
		// started; the row follows (rowsync.go).
		m.deferCreate(row, err)
	}
	return r, nil
}

// Run writes every active recording every 500 ms (sooner for one with a
// lot of buffered output) and feeds the search index, until ctx ends; then
// it writes everything buffered one last time and returns. One goroutine
// writes all recordings; three more, owned by Run too, talk to the store
// (the live index, rows the store refused and that are retried, and the
// catch-up that indexes ended recordings from their files), so a slow
// store never delays the files. Call it once.
func (m *Manager) Run(ctx context.Context) {
	queue := make(chan indexBatch, indexQueue)
	var wg sync.WaitGroup
	stopShip := func() {}
	if m.objects != nil {
		// Its own context, ended after the last flush below, so that the
		// shipper's last round ships what that flush wrote.
		var sctx context.Context
		sctx, stopShip = context.WithCancel(context.WithoutCancel(ctx))
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.shipper(sctx)
		}()
	}
	wg.Add(3)
	go func() {
		defer wg.Done()
		m.indexer(ctx, queue)
	}()
	go func() {
		defer wg.Done()
		m.rowSyncer(ctx)
	}()
	go func() {
		defer wg.Done()
		m.catchUp(ctx)
	}()
	defer func() {
		close(queue)
		stopShip()
		wg.Wait()
	}()
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.flushAll(queue)
			return
		case <-t.C:
		case <-m.kick:
		}
		m.flushAll(queue)
	}
}

// indexBatch is text of one recording for the index.
type indexBatch struct {
	r      *Recorder
	chunks []store.TextChunk
}

// flushAll flushes every active recorder once.
func (m *Manager) flushAll(queue chan<- indexBatch) {
	m.mu.Lock()
	rs := make([]*Recorder, 0, len(m.active))
	for _, r := range m.active {
		rs = append(rs, r)
	}
	m.mu.Unlock()
	for _, r := range rs {
		chunks, err := r.flush()
		if err != nil {
			r.report(err)
		}
		if len(chunks) == 0 {
			continue
		}
		select {
		case queue <- indexBatch{r: r, chunks: chunks}:
		default:
			r.indexFailed(fmt.Errorf("search index of recording %s: the store is not keeping up, %d text chunks not indexed", r.meta.ID, len(chunks)))
		}
	}
}

// indexer sends batches to the store until queue is closed. After ctx ends
// what is left gets drainTimeout in all.
func (m *Manager) indexer(ctx context.Context, queue <-chan indexBatch) {
	// Store calls outlive ctx by drainTimeout, so that the last batches of
	// a clean shutdown are indexed.
	calls, cancelCalls := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCalls()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(drainTimeout, cancelCalls) })
	defer stop()
	// Batches are gathered for up to indexEvery between commits and sent
	// as one call per recording: every FTS5 commit flushes and clears its
	// in-memory hash, which during a flood of output (a flush every few
	// MiB) cost more CPU than everything else recording does.
	var (
		pending = map[*Recorder][]store.TextChunk{}
		order   []*Recorder
		last    time.Time
	)
	add := func(b indexBatch) {
		if _, ok := pending[b.r]; !ok {
			order = append(order, b.r)
		}
		pending[b.r] = append(pending[b.r], b.chunks...)
	}
	commit := func() {
		for _, r := range order {
			cctx, cancel := context.WithTimeout(calls, indexTimeout)
			err := r.index(cctx, pending[r])
			cancel()
			if err != nil {
				r.indexFailed(err)
			}
		}
		clear(pending)
		order = order[:0]
		last = time.Now()
	}
	for b := range queue {
		add(b)
		open := true
		if wait := time.Until(last.Add(indexEvery)); wait > 0 {
			t := time.NewTimer(wait)
		gather:
			for {
				select {
				case nb, ok := <-queue:
					if !ok {
						open = false
						break gather
					}
					add(nb)
				case <-t.C:
					break gather
				}
			}
			t.Stop()
		}
		commit()
		if !open {
			return
		}
	}
}

// indexEvery is the least time between two commits to the search index.
const indexEvery = 500 * time.Millisecond

// Open returns the file of a recording, and its metadata. An active
// recording can be opened: the reader sees what has been flushed so far,
// which is always whole events. Open does not check the file against its
// hash: whatever shows a recording to a person uses OpenChecked.
func (m *Manager) Open(ctx context.Context, id string) (io.ReadCloser, store.Recording, error) {
	if err := checkID(id); err != nil {
		return nil, store.Recording{}, fmt.Errorf("open recording: %w", err)
	}
	rec, err := m.st.GetRecording(ctx, id)
	if err != nil {
		return nil, store.Recording{}, fmt.Errorf("open recording %s: %w", id, err)
	}
	f, err := m.openFile(ctx, id)
	if err != nil {
		return nil, store.Recording{}, fmt.Errorf("open recording %s: %w", id, err)
	}
	return f, rec, nil
}

// Delete removes a recording's file and metadata (with its search index).
// An active recording stops being recorded: its Recorder does nothing from
// then on, and its Close returns ErrDeleted. It returns an error wrapping
// store.ErrNotFound if there was nothing to delete.
func (m *Manager) Delete(ctx context.Context, id string) error {
	path, err := m.path(id)
	if err != nil {
		return fmt.Errorf("delete recording: %w", err)
	}
	r := m.lookup(id)
	if r != nil {
		r.kill()
		m.remove(r)
	}
	m.forgetRow(id)
	// The file first: if the store fails, the metadata is left to retry
	// with, rather than a listing of nothing.
	ferr := os.Remove(path)
	fileGone := ferr == nil
	if errors.Is(ferr, os.ErrNotExist) {
		ferr = nil
	}
	if ferr != nil {
		return fmt.Errorf("delete recording %s: %w", id, ferr)
	}
	if m.objects != nil {
		// The objects before the metadata, for the same reason.
		if err := m.deleteObjects(ctx, id); err != nil {
			return fmt.Errorf("delete recording %s: %w", id, err)
		}
	}
	if err := m.st.DeleteRecording(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) && (fileGone || r != nil || m.objects != nil) {
			return nil
		}
		return fmt.Errorf("delete recording %s: %w", id, err)
	}
	return nil
}

// DeleteOlderThan deletes this gateway's ended, incomplete and interrupted recordings
// that started before t (retention) and returns their ids. It goes on past a failure and
// returns all failures joined.
func (m *Manager) DeleteOlderThan(ctx context.Context, t time.Time) ([]string, error) {
	var ids []string
	var errs []error
	for _, state := range []string{store.RecordingEnded, store.RecordingIncomplete, store.RecordingInterrupted} {
		// RecordingFilter has no upper bound on the start time, and lists
		// newest first: list them all to reach the old ones.
		recs, err := m.st.ListRecordings(ctx, store.RecordingFilter{State: state, Limit: math.MaxInt32})
		if err != nil {
			errs = append(errs, fmt.Errorf("retention: %w", err))
			continue
		}
		for _, rec := range recs {
			// Each gateway keeps its own recordings' files: another
			// gateway's would look deleted here, and lose its metadata.
			// In a shared object store any gateway deletes any.
			if !rec.StartedAt.Before(t) || (rec.Gateway != m.gateway && m.objects == nil) {
				continue
			}
			if err := m.Delete(ctx, rec.ID); err != nil {
				errs = append(errs, fmt.Errorf("retention: %w", err))
				continue
			}
			ids = append(ids, rec.ID)
		}
	}
	return ids, errors.Join(errs...)
}

// Recover closes the recordings a previous run of the gateway left active
// (it was killed, or the machine stopped): those of the gateway SetGateway
// named, not those other gateways sharing the store are writing. Each is
// marked interrupted, its file is cut after its last complete event (a
// write the kill tore is dropped), and its size, SHA-256 and end time (the
// file's last write) are stored. Call it at start, before Run and before
// any Start. Text the kill kept from the index is not indexed again. It
// returns the recordings it closed, and goes on past a failure.
func (m *Manager) Recover(ctx context.Context) ([]store.Recording, error) {
	recs, err := m.st.InterruptActive(ctx, m.gateway, m.now())
	if err != nil {
		return nil, fmt.Errorf("recover recordings: %w", err)
	}
	var errs []error
	for i := range recs {
		rec := &recs[i]
		rec.State = store.RecordingInterrupted
		if rec.EndedAt.IsZero() {
			rec.EndedAt = m.now()
		}
		path, err := m.path(rec.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover recording: %w", err))
			continue
		}
		size, sum, mtime, err := repairFile(path, rec)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover recording %s: %w", rec.ID, err))
			m.log.Warn("interrupted recording could not be repaired", "recording", rec.ID, "err", err)
		}
		if !mtime.IsZero() {
			rec.EndedAt = mtime
		}
		rec.Size, rec.SHA256 = size, sum
		if err := m.st.FinishRecording(ctx, rec.ID, store.RecordingInterrupted, rec.EndedAt, size, sum); err != nil {
			errs = append(errs, fmt.Errorf("recover recording %s: %w", rec.ID, err))
			continue
		}
		m.log.Info("recording interrupted by the previous run closed", "recording", rec.ID, "bytes", size)
	}
	if m.objects != nil {
		if err := m.queueSpool(); err != nil {
			errs = append(errs, err)
		}
	}
	return recs, errors.Join(errs...)
}

// repairFile makes the file of an interrupted recording end with its last
// complete line and returns its size, SHA-256 and last modification time.
// A last line that is complete but for its newline gets one; a file without
// even a whole header gets a header rebuilt from rec.
func repairFile(path string, rec *store.Recording) (int64, string, time.Time, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, "", time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, "", time.Time{}, err
	}
	mtime := fi.ModTime()
	size := fi.Size()
	end, err := lastLineEnd(f, size)
	if err != nil {
		return 0, "", mtime, err
	}
	if end < size {
		tail := make([]byte, 0)
		if size-end <= MaxLineSize {
			tail = make([]byte, size-end)
			if _, err := f.ReadAt(tail, end); err != nil {
				return 0, "", mtime, err
			}
		}
		if end > 0 && len(tail) > 0 {
			if _, perr := parseEvent(tail); perr == nil {
				// Complete but for the newline: keep it.
				if _, err := f.WriteAt([]byte{'\n'}, size); err != nil {
					return 0, "", mtime, err
				}
				end = size + 1
			}
		}
		if end <= size {
			if err := f.Truncate(end); err != nil {
				return 0, "", mtime, err
			}
		}
	}
	if end == 0 {
		meta := Meta{ID: rec.ID, User: rec.User, Target: rec.Target, Account: rec.Account, Source: rec.Source,
			Action: rec.Action, Command: rec.Command, Width: 80, Height: 24}
		hdr, err := encodeHeader(meta, rec.StartedAt.Unix())
		if err != nil {
			return 0, "", mtime, err
		}
		if _, err := f.WriteAt(hdr, 0); err != nil {
			return 0, "", mtime, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, "", mtime, err
	}
	n, sum, err := hashFile(path)
	return n, sum, mtime, err
}

// lastLineEnd returns the offset just past the last '\n' in the first size
// bytes of f, 0 if there is none.
func lastLineEnd(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] == '\n' {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}
