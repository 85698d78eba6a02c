package recording

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/internal/objstore"
	"github.com/portcullis/portcullis/internal/store"
)

// Recordings in shared object storage (recordings_store: s3://...).
//
// The local file stays the recording while it is written (the SIGKILL
// guarantee is the file's) and is the spool of what the object store has
// not taken yet. One goroutine owned by Run ships:
//
//   - while a session runs, every shipEvery, what was written to its file
//     since the last shipment, as the object ID.seg/OFFSET (OFFSET the
//     byte offset in the file, 16 digits, so that the segments list in
//     order and concatenate to the file's first bytes). A segment always
//     ends with a whole line. A gateway whose disk is lost loses what was
//     not shipped: at most shipEvery plus a flush plus one upload.
//   - once the session has ended, the whole file as ID.cast (its SHA-256
//     is the one the session.end event holds), then it deletes the
//     segments and the local file.
//
// A shipment that fails is tried again with backoff (shipBackoffMin
// doubling up to shipBackoffMax) from the same offset, so an outage of the
// store costs nothing but delay as long as the local disk holds; a round
// stops at the first store failure. A clean recording whose segments are
// all large (a flood) is composed from them by the store rather than
// uploaded again. At start,
// Recover queues every local file that is not being written: those the
// last run did not ship.
//
// Reading prefers the local file, then ID.cast, then the segments (a
// recording whose gateway died with its disk).
const (
	shipEvery      = 2 * time.Second
	shipBackoffMin = time.Second
	shipBackoffMax = 10 * time.Second
	// shipDrain bounds the last round of shipping once Run's context
	// ends; what is left is shipped at the next start.
	shipDrain = 5 * time.Second
	// shipTimeout bounds one recording's shipment in a round.
	shipTimeout = 2 * time.Minute
	// segDigits is the width of a segment's offset in its name.
	segDigits = 16
)

// shipping is the shipper's state of one recording.
type shipping struct {
	off   int64 // bytes of the file in the store as segments
	ended bool  // the file is complete: ship it whole
	clean bool  // ended by Close: the segments are the file's first bytes
	fails int
	next  time.Time // no attempt before
}

// SetObjectStore makes the Manager keep recordings in o as well as on
// disk (see ship.go). Call it before Recover and Run.
func (m *Manager) SetObjectStore(o *objstore.Store) {
	m.objects = o
	m.ships = map[string]*shipping{}
	m.shipKick = make(chan struct{}, 1)
}

// Shared reports whether recordings are kept in an object store every
// gateway sharing it reads.
func (m *Manager) Shared() bool { return m.objects != nil }

func castName(id string) string  { return id + ".cast" }
func segPrefix(id string) string { return id + ".seg/" }
func segName(id string, off int64) string {
	return fmt.Sprintf("%s%0*d", segPrefix(id), segDigits, off)
}

// segOffset returns the offset in a segment's name as segName writes it
// (exactly segDigits decimal digits after the prefix), or an error: the
// names come from the bucket, which others may write.
func segOffset(id, name string) (int64, error) {
	digits, ok := strings.CutPrefix(name, segPrefix(id))
	if !ok || len(digits) != segDigits || strings.Trim(digits, "0123456789") != "" {
		return 0, fmt.Errorf("unexpected object %q among the segments of recording %s", name, id)
	}
	return strconv.ParseInt(digits, 10, 64)
}

// queueSpool queues every local recording not being written for
// shipping whole. Recover calls it, before anything is recorded.
func (m *Manager) queueSpool() error {
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		return fmt.Errorf("read the recordings spool: %w", err)
	}
	m.shipMu.Lock()
	defer m.shipMu.Unlock()
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".cast")
		if !ok || !e.Type().IsRegular() || checkID(id) != nil || m.lookup(id) != nil {
			continue
		}
		if m.ships[id] == nil {
			m.ships[id] = &shipping{ended: true}
			m.waiting.Add(1)
		}
	}
	return nil
}

// shipEnded queues a recording that has just ended for shipping whole.
// It never waits for an upload (shipMu): the session's goroutine calls it.
func (m *Manager) shipEnded(id string) {
	if m.objects == nil {
		return
	}
	m.endMu.Lock()
	m.ended = append(m.ended, id)
	m.endMu.Unlock()
	select {
	case m.shipKick <- struct{}{}:
	default:
	}
}

// takeEnded marks the recordings shipEnded queued as ended. shipMu must
// be held.
func (m *Manager) takeEnded() {
	m.endMu.Lock()
	ended := m.ended
	m.ended = nil
	m.endMu.Unlock()
	for _, id := range ended {
		s := m.ships[id]
		if s == nil {
			s = &shipping{}
			m.ships[id] = s
		}
		if !s.ended {
			m.waiting.Add(1)
		}
		s.ended, s.clean, s.next, s.fails = true, true, time.Time{}, 0
	}
}

// SpoolPending returns how many ended recordings wait in the local spool
// to be shipped whole. It does not wait for an upload.
func (m *Manager) SpoolPending() int {
	if m.objects == nil {
		return 0
	}
	m.endMu.Lock()
	defer m.endMu.Unlock()
	return int(m.waiting.Load()) + len(m.ended)
}

// shipper ships until ctx ends, then once more for at most shipDrain.
func (m *Manager) shipper(ctx context.Context) {
	t := time.NewTicker(m.shipEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shipDrain)
			m.shipRound(dctx, true)
			cancel()
			return
		case <-t.C:
		case <-m.shipKick:
		}
		m.shipRound(ctx, false)
	}
}

// shipRound ships what every recording has new, one recording at a time.
// last ignores the backoff (the gateway is stopping).
func (m *Manager) shipRound(ctx context.Context, last bool) {
	active := m.Active()
	m.shipMu.Lock()
	for _, id := range active {
		if m.ships[id] == nil {
			m.ships[id] = &shipping{}
		}
	}
	m.takeEnded()
	ids := make([]string, 0, len(m.ships))
	for id := range m.ships {
		ids = append(ids, id)
	}
	m.shipMu.Unlock()
	now := m.now()
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if err := m.shipOne(ctx, id, now, last); err != nil && !errors.As(err, new(*fs.PathError)) {
			// The store failed (not a local file): the others would
			// most likely wait for it in turn, up to shipTimeout each,
			// while Delete waits for shipMu. They try next round.
			return
		}
	}
}

// shipOne ships recording id's news and returns what failed. shipMu is
// held throughout, so that Delete never races an upload that would bring
// objects back.
func (m *Manager) shipOne(ctx context.Context, id string, now time.Time, last bool) error {
	m.shipMu.Lock()
	defer m.shipMu.Unlock()
	// A store that accepts connections and never answers must not hold
	// up every other recording (and Delete) for ever.
	ctx, cancel := context.WithTimeout(ctx, shipTimeout)
	defer cancel()
	s := m.ships[id]
	if s == nil || (!last && now.Before(s.next)) {
		return nil
	}
	var err error
	if s.ended {
		err = m.shipWhole(ctx, id, s.clean)
		if err == nil {
			delete(m.ships, id)
			m.waiting.Add(-1)
			return nil
		}
	} else {
		r := m.lookup(id)
		if r == nil {
			// Ended or deleted between the listing and now: the end
			// queues it again as ended.
			return nil
		}
		err = m.shipSegment(ctx, r, s)
	}
	if err == nil {
		s.fails, s.next = 0, time.Time{}
		return nil
	}
	s.fails++
	wait := min(shipBackoffMin<<min(s.fails-1, 8), shipBackoffMax)
	s.next = now.Add(wait)
	if s.fails == 1 {
		m.log.Warn("recording not shipped to the object store; retrying from the local spool", "recording", id,
			"store", m.objects.String(), "err", err)
	} else {
		m.log.Debug("recording not shipped to the object store", "recording", id, "attempt", s.fails, "err", err)
	}
	return err
}

// shipSegment ships what r's file holds beyond s.off.
func (m *Manager) shipSegment(ctx context.Context, r *Recorder, s *shipping) error {
	end := r.flushed.Load()
	if end <= s.off {
		return nil
	}
	f, err := os.Open(r.path)
	if err != nil {
		return fmt.Errorf("ship recording %s: %w", r.meta.ID, err)
	}
	defer f.Close()
	if err := m.objects.Put(ctx, segName(r.meta.ID, s.off), io.NewSectionReader(f, s.off, end-s.off), end-s.off); err != nil {
		return fmt.Errorf("ship recording %s: %w", r.meta.ID, err)
	}
	s.off = end
	return nil
}

// shipWhole ships an ended recording's file as ID.cast, then deletes its
// segments and the file. A clean recording (ended by Close, so its
// segments are exactly its file's first bytes) whose segments are large
// (a flood of output) is composed from them by the store instead of being
// uploaded a second time.
func (m *Manager) shipWhole(ctx context.Context, id string, clean bool) error {
	path := filepath.Join(m.dir, castName(id))
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return fmt.Errorf("ship recording %s: %w", id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("ship recording %s: %w", id, err)
	}
	composed := false
	if clean {
		composed, err = m.composeWhole(ctx, id, f, fi.Size())
		if !composed {
			// Small segments (the usual interactive session) or a store
			// without multipart copy: the upload costs little then.
			m.log.Debug("recording not composed from its segments; uploading it whole", "recording", id, "err", err)
		}
	}
	if !composed {
		if err := m.objects.Put(ctx, castName(id), io.NewSectionReader(f, 0, fi.Size()), fi.Size()); err != nil {
			return fmt.Errorf("ship recording %s: %w", id, err)
		}
	}
	if err := m.deleteSegments(ctx, id); err != nil {
		return fmt.Errorf("ship recording %s: %w", id, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ship recording %s: %w", id, err)
	}
	m.log.Debug("recording shipped to the object store", "recording", id, "bytes", fi.Size())
	return nil
}

// composeWhole makes ID.cast from id's segments and what the file f (size
// bytes) holds beyond them, if the segments start at 0, follow each other
// and are all at least objstore.MinComposePart. It reports whether it did.
func (m *Manager) composeWhole(ctx context.Context, id string, f *os.File, size int64) (bool, error) {
	segs, err := m.objects.List(ctx, segPrefix(id))
	if err != nil || len(segs) == 0 {
		return false, err
	}
	var (
		pos   int64
		names []string
	)
	for i, o := range segs {
		off, err := segOffset(id, o.Name)
		// Only the last part may be small: the last segment, when the
		// file has nothing beyond it.
		lastPart := i == len(segs)-1 && off+o.Size == size
		if err != nil || off != pos || (o.Size < objstore.MinComposePart && !lastPart) {
			return false, nil
		}
		names = append(names, o.Name)
		pos += o.Size
	}
	if pos > size || len(names) >= 10000 {
		return false, nil
	}
	if pos < size {
		tail := segName(id, pos)
		if err := m.objects.Put(ctx, tail, io.NewSectionReader(f, pos, size-pos), size-pos); err != nil {
			return false, err
		}
		names = append(names, tail)
	}
	if err := m.objects.Compose(ctx, castName(id), names); err != nil {
		return false, err
	}
	return true, nil
}

// deleteSegments removes every segment of id.
func (m *Manager) deleteSegments(ctx context.Context, id string) error {
	segs, err := m.objects.List(ctx, segPrefix(id))
	if err != nil {
		return err
	}
	for _, o := range segs {
		if err := m.objects.Delete(ctx, o.Name); err != nil {
			return err
		}
	}
	return nil
}

// deleteObjects removes a recording from the object store and forgets its
// shipping. The local file is Delete's.
func (m *Manager) deleteObjects(ctx context.Context, id string) error {
	m.shipMu.Lock()
	defer m.shipMu.Unlock()
	if s := m.ships[id]; s != nil && s.ended {
		m.waiting.Add(-1)
	}
	delete(m.ships, id)
	if err := m.objects.Delete(ctx, castName(id)); err != nil {
		return err
	}
	return m.deleteSegments(ctx, id)
}

// errNoObject: the store holds neither the recording nor a segment of it.
var errNoObject = fmt.Errorf("not in the object store: %w", os.ErrNotExist)

// openFile opens recording id: its local file, or else a copy of what the
// object store holds in a temporary file (unlinked at once).
func (m *Manager) openFile(ctx context.Context, id string) (*os.File, error) {
	path, err := m.path(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err == nil || m.objects == nil || !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	tmp, err := os.CreateTemp(m.dir, ".fetch-*")
	if err != nil {
		return nil, fmt.Errorf("fetch recording %s: %w", id, err)
	}
	_ = os.Remove(tmp.Name())
	if err := m.fetch(ctx, id, tmp); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("fetch recording %s: %w", id, err)
	}
	return tmp, nil
}

// fetch writes recording id from the object store to w: ID.cast, or the
// segments of one that never ended there.
func (m *Manager) fetch(ctx context.Context, id string, w io.Writer) error {
	for try := 0; try < 2; try++ {
		err := m.fetchObject(ctx, castName(id), w)
		if !errors.Is(err, objstore.ErrNotFound) {
			return err
		}
		n, err := m.fetchSegments(ctx, id, 0, w)
		if err != nil || n > 0 {
			return err
		}
		// No segments either: they may have been deleted just after the
		// whole file was stored; look once more.
	}
	return fmt.Errorf("fetch recording %s: %w", id, errNoObject)
}

func (m *Manager) fetchObject(ctx context.Context, name string, w io.Writer) error {
	rc, err := m.objects.Get(ctx, name)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	return nil
}

// fetchSegments writes the segments from offset from on to w and returns
// how many bytes; the first must start at from (it and each later one
// where the one before ended), or it is an error naming the missing range.
func (m *Manager) fetchSegments(ctx context.Context, id string, from int64, w io.Writer) (int64, error) {
	segs, err := m.objects.List(ctx, segPrefix(id))
	if err != nil {
		return 0, fmt.Errorf("fetch recording %s: %w", id, err)
	}
	pos := from
	for _, o := range segs {
		off, err := segOffset(id, o.Name)
		if err != nil {
			return pos - from, fmt.Errorf("fetch recording %s: %w", id, err)
		}
		if off < pos {
			continue
		}
		if off > pos {
			return pos - from, fmt.Errorf("fetch recording %s: bytes %d to %d are missing from the object store", id, pos, off)
		}
		if err := m.fetchObject(ctx, o.Name, w); err != nil {
			return pos - from, fmt.Errorf("fetch recording %s: %w", id, err)
		}
		pos += o.Size
	}
	return pos - from, nil
}

// shipDeps is the shipper's part of the Manager (embedded there).
type shipDeps struct {
	objects   *objstore.Store
	shipEvery time.Duration
	shipKick  chan struct{}
	// shipMu guards ships and is held across one recording's upload.
	// Lock order: shipMu, then mu or endMu.
	shipMu sync.Mutex
	ships  map[string]*shipping
	// endMu guards ended: recordings that ended since the last round,
	// queued without waiting for shipMu.
	endMu sync.Mutex
	ended []string
	// waiting counts the ships that are ended (SpoolPending).
	waiting atomic.Int64
}

// Live watch of a session another gateway records: its segments are read
// from the object store as they arrive (polled every followPoll), so a
// watcher sees the session about shipEvery late. This needs nothing
// between gateways but the store they share: no gateway-to-gateway
// connection to authenticate, and a watcher on any gateway survives the
// loss of none but the recording one.
const (
	followPoll = time.Second
	// followEndWait bounds the wait, once the session has ended, for the
	// recording gateway to store the whole file; after it the watcher
	// gets what the segments hold.
	followEndWait = shipDrain + 3*shipEvery
)

// followRemote is Follow for a recording whose file is on another gateway.
func (m *Manager) followRemote(ctx context.Context, id string, fromStart bool, w io.Writer) error {
	var (
		pos       int64 // bytes of the recording handled (sent or skipped)
		sentHead  bool
		endedAt   time.Time
		chunk     bytes.Buffer
		pollTimer = time.NewTicker(followPoll)
	)
	defer pollTimer.Stop()
	// send writes chunk (whole lines from offset pos) to w: the header
	// always, the rest unless it was already there when the watcher came
	// and fromStart is false.
	send := func(skip bool) error {
		b := chunk.Bytes()
		if !sentHead && len(b) > 0 {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				return fmt.Errorf("follow recording %s: the first segment holds no whole header", id)
			}
			if _, err := w.Write(b[:i+1]); err != nil {
				return err
			}
			sentHead, b = true, b[i+1:]
		}
		if len(b) > 0 && !skip {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		pos += int64(chunk.Len())
		chunk.Reset()
		return nil
	}
	first := true
	for {
		rec, err := m.st.GetRecording(ctx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) && sentHead {
				return fmt.Errorf("follow recording %s: %w", id, ErrDeleted)
			}
			return fmt.Errorf("follow recording %s: %w", id, err)
		}
		if rec.State != store.RecordingActive {
			if endedAt.IsZero() {
				endedAt = m.now()
			}
			// The whole file, once the recording gateway has stored it.
			gerr := m.fetchObject(ctx, castName(id), &chunk)
			if gerr == nil || m.now().Sub(endedAt) > followEndWait {
				if gerr != nil {
					chunk.Reset()
					if _, err := m.fetchSegments(ctx, id, pos, &chunk); err != nil {
						return err
					}
				} else if int64(chunk.Len()) >= pos {
					chunk.Next(int(pos))
				} else {
					return fmt.Errorf("follow recording %s: the stored recording is shorter than what was shipped while it ran", id)
				}
				return send(!fromStart && first)
			}
			chunk.Reset()
		} else {
			if _, err := m.fetchSegments(ctx, id, pos, &chunk); err != nil {
				return err
			}
			if err := send(!fromStart && first); err != nil {
				return err
			}
			first = false
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pollTimer.C:
		}
	}
}
