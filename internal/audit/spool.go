package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// Spool keeps the audit events the store could not take (the database is
// down or restarting) in a file in the gateway's data directory, and
// appends them to the store, in the order they happened, once it answers
// again. Sessions that are running when the database goes away keep going
// and keep their trail.
//
// The spool file holds one JSON object per line, {"seq": N, "event": ...},
// each written and fsynced before Write returns. A second file (path +
// ".done") holds the highest seq already appended, rewritten atomically
// after each append, so that a restart resumes where draining stopped. A
// crash between an append and that rewrite appends one event twice: the
// trail may then show a duplicate, never a gap.
type Spool struct {
	path string
	log  *slog.Logger

	// mu guards everything below. The store is never called with mu
	// held, so that writers never wait on the database.
	mu      sync.Mutex
	f       *os.File // the spool, opened for append
	queue   []spooled
	nextSeq int64
	wake    chan struct{}
	// refusals counts the drain rounds in a row in which a store that
	// takes writes refused the event refusedSeq (the head).
	refusedSeq int64
	refusals   int
}

type spooled struct {
	Seq   int64            `json:"seq"`
	Event store.AuditEvent `json:"event"`
}

// OpenSpool opens (or creates, 0600) the spool at path and reads what a
// previous run left in it.
func OpenSpool(path string, log *slog.Logger) (*Spool, error) {
	s := &Spool{path: path, log: log, wake: make(chan struct{}, 1), nextSeq: 1}
	done, err := readDone(path + ".done")
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read audit spool: %w", err)
	}
	// good is the length of the file up to the end of its last whole,
	// readable line: a torn tail (a crash mid-write) is cut off before
	// anything is appended, or the next event would be glued to it.
	good := 0
	for n, rest := 1, data; len(rest) > 0; n++ {
		i := bytes.IndexByte(rest, '\n')
		var line []byte
		if i < 0 {
			line, rest = rest, nil
		} else {
			line, rest = rest[:i], rest[i+1:]
		}
		var e spooled
		if err := json.Unmarshal(bytes.TrimSpace(line), &e); err != nil || i < 0 {
			if len(bytes.TrimSpace(rest)) == 0 {
				if len(bytes.TrimSpace(line)) > 0 {
					log.Warn("audit spool: dropped a torn last line", "file", path, "line", n)
				}
				break
			}
			// An earlier bad line is damage that must not be skipped
			// silently.
			return nil, fmt.Errorf("audit spool %s: line %d: %w", path, n, err)
		}
		good = len(data) - len(rest)
		if e.Seq >= s.nextSeq {
			s.nextSeq = e.Seq + 1
		}
		if e.Seq > done {
			s.queue = append(s.queue, e)
		}
	}
	if good < len(data) {
		if err := os.Truncate(path, int64(good)); err != nil {
			return nil, fmt.Errorf("audit spool %s: cut the torn last line: %w", path, err)
		}
	}
	if len(s.queue) == 0 {
		// Nothing left: start a fresh file (and drop a torn line).
		if err := s.reset(); err != nil {
			return nil, err
		}
	} else {
		log.Warn("audit spool holds events not yet in the store; appending them when it answers", "events", len(s.queue), "file", path)
	}
	s.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit spool: %w", err)
	}
	return s, nil
}

func readDone(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read audit spool progress: %w", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("audit spool progress %s: %q is not a number", path, b)
	}
	return n, nil
}

// Pending returns how many events wait for the store.
func (s *Spool) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// add writes ev to the spool, durably, behind those already waiting.
func (s *Spool) add(ev store.AuditEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("spool audit event %s: the spool is closed", ev.Type)
	}
	e := spooled{Seq: s.nextSeq, Event: ev}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("spool audit event %s: %w", ev.Type, err)
	}
	if _, err := s.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("spool audit event %s: %w", ev.Type, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("spool audit event %s: %w", ev.Type, err)
	}
	s.nextSeq++
	s.queue = append(s.queue, e)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// drain appends waiting events to the store in order until none is left
// or the store fails; it returns how many it appended.
func (s *Spool) drain(ctx context.Context, l *Log) (int, error) {
	n := 0
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return n, nil
		}
		head := s.queue[0]
		s.mu.Unlock()

		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		id, err := l.store.AppendAudit(actx, head.Event)
		cancel()
		if err != nil {
			writable := checkEvent(head.Event) != nil || l.writable(ctx) == nil
			s.mu.Lock()
			if s.refusedSeq != head.Seq {
				s.refusedSeq, s.refusals = head.Seq, 0
			}
			if writable {
				s.refusals++
			}
			refused := s.refusals >= refusedRounds
			s.mu.Unlock()
			if writable && !refused {
				// Try again soon rather than at the next tick.
				select {
				case <-ctx.Done():
					return n, ctx.Err()
				case <-time.After(refusedPause):
				}
				continue
			}
			if !refused {
				// The store refuses writes (down, read-only, locked): the
				// event waits, and so does every event behind it.
				l.noteFailure(err)
				return n, fmt.Errorf("append spooled audit event %d: %w", head.Seq, err)
			}
			// The store takes writes but not this event (a constraint,
			// a value it cannot hold, a bug): retrying would hold up
			// every event behind it for ever. It is set aside, whole, in a file beside the
			// spool, and said loudly.
			if rerr := s.reject(head); rerr != nil {
				return n, fmt.Errorf("set aside spooled audit event %d: %w", head.Seq, rerr)
			}
			l.log.Error("audit event refused by the store; set aside in the rejected file", "type", head.Event.Type,
				"seq", head.Seq, "file", s.path+".rejected", "err", err)
		} else {
			l.stored(head.Event, id)
		}
		n++
		s.mu.Lock()
		s.queue = s.queue[1:]
		var perr error
		if len(s.queue) == 0 {
			perr = s.reset()
		} else {
			perr = writeFileSync(s.path+".done", []byte(strconv.FormatInt(head.Seq, 10)+"\n"))
		}
		s.mu.Unlock()
		if perr != nil {
			return n, fmt.Errorf("record audit spool progress: %w", perr)
		}
		if s.Pending() == 0 {
			l.failure.Store(nil)
		}
	}
}

// refusedRounds is how many drain rounds in a row a store that takes
// writes must refuse the same event before it is set aside: a lock taken
// and released around an append, or a checkpoint of the file, must not
// pass for a refusal that loses the event from the trail.
const refusedRounds = 3

// refusedPause is the time between two such rounds.
const refusedPause = 200 * time.Millisecond

// reject appends e to the rejected-events file (0600), synced.
func (s *Spool) reject(e spooled) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.path+".rejected", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// reset empties the spool once everything in it is in the store. The
// progress file goes first: a crash in between leaves an empty progress
// file and a full spool, which replays (duplicates), never loses.
func (s *Spool) reset() error {
	if s.f != nil {
		if err := s.f.Truncate(0); err != nil {
			return fmt.Errorf("empty audit spool: %w", err)
		}
		_ = s.f.Sync()
	} else if err := os.WriteFile(s.path, nil, 0o600); err != nil {
		return fmt.Errorf("empty audit spool: %w", err)
	}
	if err := os.Remove(s.path + ".done"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("empty audit spool progress: %w", err)
	}
	return nil
}

// Close closes the spool file. Waiting events stay in it for the next
// start.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// writeFileSync replaces path with data through a synced temporary file.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// SetSpool makes Write keep events the store refuses in sp, and Run
// append them later. Call before use.
func (l *Log) SetSpool(sp *Spool) { l.spool = sp }

// Run appends spooled events to the store whenever some wait: at once
// when one is added, then every second while the store refuses them. It
// returns when ctx ends. Without a spool it returns at once.
func (l *Log) Run(ctx context.Context) {
	if l.spool == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.spool.wake:
		case <-t.C:
		}
		if l.spool.Pending() == 0 {
			continue
		}
		n, err := l.spool.drain(ctx, l)
		switch {
		case err != nil && !failing:
			failing = true
			l.log.Warn("audit store unavailable; events wait in the spool", "appended", n, "waiting", l.spool.Pending(), "err", err)
		case err == nil:
			if failing || n > 0 {
				l.log.Info("audit spool appended to the store", "events", n)
			}
			failing = false
		}
	}
}
