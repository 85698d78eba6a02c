package sshgate

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/store"
)

// activity records when data last moved on a session, for idle_timeout.
// Copy loops stamp it once per chunk, not per byte.
type activity struct{ last atomic.Int64 }

func (a *activity) touch() {
	if a != nil {
		a.last.Store(time.Now().UnixNano())
	}
}

func (a *activity) idleFor(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, a.last.Load()))
}

// enforceLimits ends a session that outlives max_session, sits idle for
// idle_timeout, or outlasts its policies' valid_until: end is called once
// with the reason, and an audit event is written. The returned stop must be
// called when the session ends.
//
// The limits are runtime timers, not a goroutine: an idle session of
// thousands costs no stack while it waits. The idle timer re-arms itself
// for the rest of the timeout whenever data moved meanwhile.
func (c *conn) enforceLimits(g *grant, ob policy.Obligations, act *activity, end func(reason string)) (stop func()) {
	if ob.MaxSession <= 0 && ob.IdleTimeout <= 0 && ob.NotAfter.IsZero() {
		return func() {}
	}
	act.touch()
	var (
		mu     sync.Mutex // guards done and timers; held while they are set up
		done   bool       // stopped, or a limit fired
		timers []*time.Timer
		idle   *time.Timer
	)
	// finish marks the limits done and stops their timers; it reports
	// whether they were still running.
	finish := func() bool {
		mu.Lock()
		was := done
		done = true
		ts := timers
		mu.Unlock()
		for _, t := range ts {
			t.Stop()
		}
		return !was
	}
	fire := func(reason string) {
		if c.ctx.Err() != nil || !finish() {
			// The connection is ending (its sessions end anyway, and not
			// for this limit), or stopped, or another limit fired first.
			return
		}
		_ = c.audit(store.AuditEvent{Type: audit.SessionLimit, Outcome: audit.Info, SessionID: g.id, Message: reason,
			Detail: map[string]any{"action": g.action}})
		end(reason)
	}
	mu.Lock()
	defer mu.Unlock()
	if ob.MaxSession > 0 {
		timers = append(timers, time.AfterFunc(ob.MaxSession, func() {
			fire(fmt.Sprintf("max_session of %s reached", ob.MaxSession))
		}))
	}
	if !ob.NotAfter.IsZero() {
		timers = append(timers, time.AfterFunc(time.Until(ob.NotAfter), func() {
			fire("the policy's validity window ended (valid_until)")
		}))
	}
	if ob.IdleTimeout > 0 {
		idle = time.AfterFunc(ob.IdleTimeout, func() {
			if d := act.idleFor(time.Now()); d < ob.IdleTimeout {
				mu.Lock()
				if !done {
					idle.Reset(ob.IdleTimeout - d)
				}
				mu.Unlock()
				return
			}
			fire(fmt.Sprintf("idle for %s (idle_timeout)", ob.IdleTimeout))
		})
		timers = append(timers, idle)
	}
	return func() { finish() }
}

// sessionFiles is what a new session may open: the upstream connection
// and a recording file. Admitted against Config.Files.
const sessionFiles = 2

// errFilesFull is the line a client sees when its session is refused
// because the gateway is near its limit of open files.
const errFilesFull = "the gateway is at its limit of open files; session refused, try again shortly"

// filesAuditEvery bounds the audit events about sessions refused near the
// open-file limit to one per interval: a gateway at its limit under load
// must not add an audit write per refusal.
const filesAuditEvery = time.Minute

// auditFilesRefusal writes the first refusal for lack of open files in each
// filesAuditEvery; later ones are only counted (portcullis_denials_total).
func (s *Server) auditFilesRefusal(c *conn, g *grant, action string) {
	now := time.Now().UnixNano()
	last := s.filesAudited.Load()
	if last != 0 && now-last < int64(filesAuditEvery) || !s.filesAudited.CompareAndSwap(last, now) {
		return
	}
	_ = c.audit(store.AuditEvent{Type: audit.RequestDeny, Outcome: audit.Deny, SessionID: g.id,
		Message: fmt.Sprintf("the gateway is near its limit of open files; new sessions are refused (further refusals in the next %v are not audited)", filesAuditEvery),
		Detail:  map[string]any{"action": action}})
}
