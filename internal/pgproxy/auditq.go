package pgproxy

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// auditItem is what a session queues for the audit writer: an event of
// its own (ev), or one statement.
type auditItem struct {
	ev   *store.AuditEvent
	stmt stmtRecord
}

// Bounds of the audit queues and batches.
const (
	// batchWindow is how long the writer collects before writing: a
	// statement's event reaches the store that much later.
	batchWindow = 100 * time.Millisecond
	// batchPoll is how often the writer looks for sessions with events
	// within the window.
	batchPoll = 10 * time.Millisecond
	// maxQueued bounds a session's queue: past it the session waits
	// for the writer (the store sets the pace, and no event is dropped).
	maxQueued        = 4096
	maxBatchSQLBytes = 64 << 10 // statement text in one event
)

// queueAudit appends it to the session's queue, and tells the writer when
// the queue was empty. Each session's items are written in the order
// queued. A statement costs a lock and an append: handing each to the
// writer's goroutine through a channel (a wake-up per statement) cost
// more CPU than relaying it.
func (sess *session) queueAudit(it auditItem) {
	sess.qmu.Lock()
	if sess.qcond == nil {
		sess.qcond = sync.NewCond(&sess.qmu)
	}
	for len(sess.auditQ) >= maxQueued {
		sess.qcond.Wait()
	}
	first := len(sess.auditQ) == 0
	sess.auditQ = append(sess.auditQ, it)
	sess.qmu.Unlock()
	if first {
		sess.srv.stmts <- sess
	}
}

// takeAudit returns the session's queue and empties it.
func (sess *session) takeAudit() []auditItem {
	sess.qmu.Lock()
	defer sess.qmu.Unlock()
	q := sess.auditQ
	sess.auditQ = nil
	if sess.qcond != nil {
		sess.qcond.Broadcast()
	}
	return q
}

// auditWriter writes the sessions' queued events until s.stmts is closed
// (after every session ended). What a session queued within batchWindow
// is written together: its statements become one db.statement event
// listing them all, so that under load the trail grows by one event per
// session per window instead of one per statement (a store append per
// statement capped throughput at the store's append rate).
//
// A gateway killed with SIGKILL may lose the last window of statement
// events (the session's start is written before it runs, as for SSH).
// Within the window the writer looks for sessions every batchPoll rather
// than being woken by each.
func (s *Server) auditWriter() {
	poll := time.NewTicker(batchPoll)
	defer poll.Stop()
	var ready []*session
	for sess := range s.stmts {
		ready = append(ready[:0], sess)
		deadline := time.Now().Add(batchWindow)
	collect:
		for {
			select {
			case sess, ok := <-s.stmts:
				if !ok {
					break collect
				}
				ready = append(ready, sess)
				continue
			default:
			}
			if !time.Now().Before(deadline) {
				break
			}
			<-poll.C
		}
		for _, sess := range ready {
			s.writeSession(sess, sess.takeAudit())
		}
		clear(ready) // let the sessions go
	}
}

// stmtBatch is a session's statements waiting to be written as one event.
type stmtBatch struct {
	sess  *session
	stmts []stmtRecord
	size  int // len of their SQL joined by newlines
}

// writeSession writes a session's queued items in order, each run of
// statements as db.statement events of at most maxBatchSQLBytes of SQL.
func (s *Server) writeSession(sess *session, items []auditItem) {
	write := func(ev store.AuditEvent, quiet bool) {
		w := s.cfg.Audit.Write
		if quiet {
			w = s.cfg.Audit.WriteQuiet
		}
		if err := w(context.Background(), ev); err != nil {
			s.cfg.Log.Error("audit", "type", ev.Type, "session", ev.SessionID, "err", err)
		}
	}
	b := &stmtBatch{sess: sess}
	flush := func() {
		if len(b.stmts) > 0 {
			// Statement batches are logged at debug level only: the
			// store has them whole, and an info line of each would
			// put every literal in the logs (audit.Log.WriteQuiet).
			write(b.event(), true)
			b.stmts, b.size = nil, 0
		}
	}
	for i := range items {
		it := &items[i]
		if it.ev != nil {
			flush()
			write(*it.ev, false)
			continue
		}
		if len(b.stmts) > 0 && b.size+1+len(it.stmt.SQL) > maxBatchSQLBytes {
			flush()
		}
		if len(b.stmts) > 0 {
			b.size++
		}
		b.size += len(it.stmt.SQL)
		b.stmts = append(b.stmts, it.stmt)
	}
	flush()
}

// event is the db.statement event of b's statements: their SQL in the
// message, one per line, and each in Detail["statements"]. Its outcome is
// failure if one failed, else info if one's outcome is unknown, else
// success.
func (b *stmtBatch) event() store.AuditEvent {
	sess := b.sess
	var msg strings.Builder
	msg.Grow(b.size)
	list := make([]any, len(b.stmts))
	outcome := audit.Success
	for i := range b.stmts {
		r := &b.stmts[i]
		if i > 0 {
			msg.WriteByte('\n')
		}
		msg.WriteString(r.SQL)
		list[i] = r.detail()
		switch {
		case r.Outcome == audit.Failure:
			outcome = audit.Failure
		case r.Outcome != audit.Success && outcome == audit.Success:
			outcome = audit.Info
		}
	}
	return store.AuditEvent{Type: EventStatement, Outcome: outcome, User: sess.ident.Name, Source: sess.src,
		Target: sess.login.Target, Account: sess.targetUser, SessionID: sess.id, Message: msg.String(),
		Detail: map[string]any{"database": sess.database, "front": "postgres", "statements": list}}
}
