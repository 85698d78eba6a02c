package sshgate

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// commandWait is how long a typed line may wait, from when it was typed, to
// be stored in the command history before it is given up (and logged as
// not stored). A burst of sessions ending at once (5,000 users typing exit,
// a revocation) queues thousands of writes behind the audit trail's; the
// store clears them in tens of seconds on this machine kind. A var so that
// tests can make a store that never answers give up at once.
var commandWait = time.Minute

// commandQueueBytes bounds the text of the lines queued and not yet
// written. Past it, add waits for the store, as every line did before the
// queue: the typing of a session that pastes lines faster than a slow
// store takes them is held back rather than growing the gateway's memory
// without limit (a line may be 64 Ki runes). A var so that tests can fill
// it with a few lines.
var commandQueueBytes = 16 << 20

// commandQueue writes the interactive lines of every session to the command
// history, in the order they were typed, off the sessions' data path: a
// line is queued when the shell's input passes through, and one goroutine
// writes the queue. Before, each line was written where it was read, so a
// slow store stalled the user's typing, and a burst of lines (thousands of
// sessions typing exit at once) put one goroutine per line in the queue for
// the store's one write connection, where they ran out of time and the
// lines were lost.
//
// The writer goroutine is started by add when the queue was empty and ends
// when it has emptied it, so it lives no longer than the lines it owes
// the store. A session waits for its own lines (wait) before its end event
// is written, so that the history of an ended session is complete; since
// Server.Shutdown drains the queue last (drain), and logs the lines it
// could not store in time.
//
// Safe for concurrent use.
type commandQueue struct {
	store CommandLog
	log   *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond // broadcast when done advances; uses mu
	pending []store.Command
	running bool   // a writer goroutine owns pending
	added   uint64 // lines ever queued
	done    uint64 // lines written or given up, in order
	queued  int    // bytes of the lines added and not done
	full    int    // adds waiting for room, for tests
}

func newCommandQueue(st CommandLog, log *slog.Logger) *commandQueue {
	q := &commandQueue{store: st, log: log}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add queues a line and returns its ticket for wait. It waits for the
// store only when commandQueueBytes are queued already.
func (q *commandQueue) add(c store.Command) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.queued > 0 && q.queued+len(c.Command) > commandQueueBytes {
		q.full++
		q.cond.Wait()
		q.full--
	}
	q.pending = append(q.pending, c)
	q.queued += len(c.Command)
	q.added++
	if !q.running {
		q.running = true
		go q.write()
	}
	return q.added
}

// wait returns once the line with ticket (and every line before it) has
// been written or given up. Lines are given up commandWait after they
// were typed, so wait is bounded.
//
// Lock order: a session's data path may wait in add and its end in wait;
// both only on mu, which the writer never holds across a store call.
func (q *commandQueue) wait(ticket uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.done < ticket {
		q.cond.Wait()
	}
}

// drain waits, for at most d, until every queued line has been written or
// given up, and returns how many had not. Server.Shutdown calls it last,
// so that lines queued by sessions that ended in the shutdown are stored,
// or counted in the log, before the process exits. It polls: it runs once.
func (q *commandQueue) drain(d time.Duration) uint64 {
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

// write empties the queue, a batch at a time, and ends.
func (q *commandQueue) write() {
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
		for _, c := range batch {
			q.writeOne(c)
			q.mu.Lock()
			q.done++
			q.queued -= len(c.Command)
			q.cond.Broadcast()
			q.mu.Unlock()
		}
	}
}

// writeOne stores one line, bounded by commandWait from when it was typed:
// behind a store that does not answer, the lines queued meanwhile fail at
// once rather than each waiting its own commandWait.
func (q *commandQueue) writeOne(c store.Command) {
	ctx, cancel := context.WithDeadline(context.Background(), c.Time.Add(commandWait))
	defer cancel()
	if _, err := q.store.AppendCommand(ctx, c); err != nil {
		q.log.Error("command history not stored", "session", c.SessionID, "user", c.User, "target", c.Target,
			"account", c.Account, "err", err)
	}
}
