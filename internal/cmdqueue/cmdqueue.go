// Package cmdqueue writes command history rows to the store off the data
// path of the fronts that produce them: a row is queued where a front sees
// a command (a shell line, a kubectl request) and one goroutine writes the
// queue. The SSH and Kubernetes fronts share it; a front never waits for
// the store to answer one of its users.
package cmdqueue

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// DefaultWait is how long a row may wait, from when it was queued, to be
// stored before it is given up (and logged as not stored). A burst of SSH
// sessions ending at once (5,000 users typing exit, a revocation) queues
// thousands of writes behind the audit trail's; the store clears them in
// tens of seconds on this machine kind.
const DefaultWait = time.Minute

// DefaultMaxBytes bounds the text of the rows queued and not yet written.
// Past it, Add waits for the store and TryAdd drops the row (a line may be
// 64 Ki runes).
const DefaultMaxBytes = 16 << 20

// Store is where the rows go.
type Store interface {
	AppendCommand(ctx context.Context, c store.Command) (int64, error)
}

// BatchStore is a Store that can also store many rows in one transaction
// (the SQLite and PostgreSQL stores can). Rows go in order, all or none.
type BatchStore interface {
	AppendCommands(ctx context.Context, cs []store.Command) error
}

// dropLogInterval spaces the log lines of TryAdd's drops: one line per
// interval with the count, not one per row under an overload.
const dropLogInterval = 10 * time.Second

// Queue writes rows to the store in the order they were queued. Before it,
// each SSH line was written where it was read, so a slow store stalled the
// user's typing, and a burst of lines (thousands of sessions typing exit at
// once) put one goroutine per line in the queue for the store's one write
// connection, where they ran out of time and the lines were lost.
//
// The writer goroutine is started by an add when the queue was empty and
// ends when it has emptied it, so it lives no longer than the rows it owes
// the store. A caller may wait for its own rows (Wait), and a shutdown
// drains the queue last (Drain) and logs the rows it could not store in
// time.
//
// Safe for concurrent use.
type Queue struct {
	store Store
	batch BatchStore // store as a BatchStore, or nil
	log   *slog.Logger
	// MaxWait and MaxBytes are DefaultWait and DefaultMaxBytes unless
	// changed before the first add (tests do).
	MaxWait  time.Duration
	MaxBytes int

	dropped  atomic.Uint64 // rows TryAdd gave up, ever
	loggedAt atomic.Int64  // unix nanoseconds of the last drop log line
	logged   atomic.Uint64 // dropped at that line

	mu      sync.Mutex
	cond    *sync.Cond // broadcast when done advances; uses mu
	pending []item
	running bool   // a writer goroutine owns pending
	added   uint64 // rows ever queued
	done    uint64 // rows written or given up, in order
	queued  int    // bytes of the rows added and not done
	full    int    // adds waiting for room, for tests
}

// item is a queued row and when it was queued: a row's own Time may be
// long before (an exec's row is queued when the exec ends).
type item struct {
	c  store.Command
	at time.Time
}

// New returns an empty queue writing to st and logging to log; when st is
// a BatchStore, rows that queued while a write ran are written together.
func New(st Store, log *slog.Logger) *Queue {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{store: st, log: log, MaxWait: DefaultWait, MaxBytes: DefaultMaxBytes}
	q.batch, _ = st.(BatchStore)
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add queues a row and returns its ticket for Wait. It waits for the
// store only when MaxBytes are queued already: the typing of an SSH
// session that pastes lines faster than a slow store takes them is held
// back rather than growing the gateway's memory without limit.
func (q *Queue) Add(c store.Command) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.queued > 0 && q.queued+len(c.Command) > q.MaxBytes {
		q.full++
		q.cond.Wait()
		q.full--
	}
	return q.push(c)
}

// TryAdd queues a row unless MaxBytes are queued already, when it drops
// it, counts it (Dropped) and logs the drops at most once per ten
// seconds. For a front whose requests must never wait for the history
// (the Kubernetes front, whose audit trail is the authoritative record).
func (q *Queue) TryAdd(c store.Command) bool {
	q.mu.Lock()
	if q.queued > 0 && q.queued+len(c.Command) > q.MaxBytes {
		q.mu.Unlock()
		q.drop(c)
		return false
	}
	q.push(c)
	q.mu.Unlock()
	return true
}

// drop counts a row TryAdd gave up and logs the count now and then.
func (q *Queue) drop(c store.Command) {
	n := q.dropped.Add(1)
	now := time.Now().UnixNano()
	last := q.loggedAt.Load()
	if now-last < int64(dropLogInterval) || !q.loggedAt.CompareAndSwap(last, now) {
		return
	}
	since := n - q.logged.Swap(n)
	q.log.Error("command history full: rows dropped (the audit trail has them)", "dropped", since, "dropped_total", n,
		"user", c.User, "target", c.Target)
}

// Dropped is how many rows TryAdd has dropped since New.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// push appends c; mu is held.
func (q *Queue) push(c store.Command) uint64 {
	q.pending = append(q.pending, item{c: c, at: time.Now()})
	q.queued += len(c.Command)
	q.added++
	if !q.running {
		q.running = true
		go q.write()
	}
	return q.added
}

// Wait returns once the row with ticket (and every row before it) has
// been written or given up. Rows are given up MaxWait after they were
// queued, so Wait is bounded.
//
// Lock order: a session's data path may wait in Add and its end in Wait;
// both only on mu, which the writer never holds across a store call.
func (q *Queue) Wait(ticket uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.done < ticket {
		q.cond.Wait()
	}
}

// Drain waits, for at most d, until every queued row has been written or
// given up, and returns how many had not. A shutdown calls it last, so
// that rows queued by sessions that ended in the shutdown are stored, or
// counted in the log, before the process exits. It polls: it runs once.
func (q *Queue) Drain(d time.Duration) uint64 {
	deadline := time.Now().Add(d)
	for {
		q.mu.Lock()
		left := q.added - q.done
		q.mu.Unlock()
		if left == 0 || !time.Now().Before(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// maxBatch bounds the rows of one AppendCommands call.
const maxBatch = 256

// write empties the queue, a batch at a time, and ends. With a BatchStore,
// the rows queued while the last write ran go in one transaction: under
// load (every kubectl request is a row) a commit per row would cost the
// store as much again as the audit trail does.
func (q *Queue) write() {
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		for len(batch) > 0 {
			n := 1
			if q.batch != nil {
				n = min(len(batch), maxBatch)
			}
			chunk := batch[:n]
			batch = batch[n:]
			if n == 1 {
				q.writeOne(chunk[0])
			} else {
				q.writeBatch(chunk)
			}
			q.mu.Lock()
			q.done += uint64(n)
			for _, it := range chunk {
				q.queued -= len(it.c.Command)
			}
			q.cond.Broadcast()
			q.mu.Unlock()
		}
	}
}

// writeBatch stores rows in one transaction, bounded by MaxWait from when
// the oldest was queued. If it fails, each row is written on its own
// (with its own bound), so that one bad row or the oldest row's deadline
// does not cost the others.
func (q *Queue) writeBatch(chunk []item) {
	cs := make([]store.Command, len(chunk))
	for i, it := range chunk {
		cs[i] = it.c
	}
	ctx, cancel := context.WithDeadline(context.Background(), chunk[0].at.Add(q.MaxWait))
	err := q.batch.AppendCommands(ctx, cs)
	cancel()
	if err == nil {
		return
	}
	q.log.Warn("command history batch not stored; storing its rows one by one", "rows", len(chunk), "err", err)
	for _, it := range chunk {
		q.writeOne(it)
	}
}

// writeOne stores one row, bounded by MaxWait from when it was queued:
// behind a store that does not answer, the rows queued meanwhile fail at
// once rather than each waiting its own MaxWait.
func (q *Queue) writeOne(it item) {
	ctx, cancel := context.WithDeadline(context.Background(), it.at.Add(q.MaxWait))
	defer cancel()
	c := it.c
	if _, err := q.store.AppendCommand(ctx, c); err != nil {
		q.log.Error("command history not stored", "session", c.SessionID, "user", c.User, "target", c.Target,
			"account", c.Account, "err", err)
	}
}
