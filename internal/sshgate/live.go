package sshgate

import (
	"sort"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/store"
)

// setEnd records how a running session is ended and as whom it runs.
func (c *conn) setEnd(g *grant, end func(string), targetUser string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g.end, g.targetUser = end, targetUser
}

// List lists running sessions and tunnels, oldest first.
func (s *Server) List() []livesession.Session {
	var out []livesession.Session
	recorded, incomplete := map[string]bool{}, map[string]bool{}
	if s.cfg.Recordings != nil {
		for _, id := range s.cfg.Recordings.Active() {
			recorded[id] = true
		}
		// A recording losing output (on_failure: continue) is not
		// "recorded": say so.
		incomplete = s.cfg.Recordings.Incomplete()
	}
	for _, c := range s.liveConns() {
		c.mu.Lock()
		for g := range c.grants {
			if g.end == nil {
				continue // still being set up
			}
			out = append(out, livesession.Session{
				ID: g.id, User: c.ident.Name, Target: c.login.Target, Account: g.targetUser, Source: c.srcStr,
				Action: g.action, Command: g.command, Started: g.started,
				Recorded: recorded[g.id] && !incomplete[g.id], RecordingIncomplete: incomplete[g.id], Connection: c.id,
			})
		}
		c.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// Kill ends one running session with a message to its user, and writes
// an audit event naming who ended it.
func (s *Server) Kill(id, by, message string) error {
	for _, c := range s.liveConns() {
		c.mu.Lock()
		var found *grant
		for g := range c.grants {
			if g.id == id && g.end != nil {
				found = g
			}
		}
		c.mu.Unlock()
		if found == nil {
			continue
		}
		reason := "ended by " + by
		if message != "" {
			reason += ": " + message
		}
		_ = c.audit(store.AuditEvent{Type: audit.SessionKill, Outcome: audit.Info, SessionID: id, Message: reason,
			Detail: map[string]any{"by": by}})
		found.end(reason)
		return nil
	}
	return livesession.ErrNotFound
}

var _ livesession.Controller = (*Server)(nil)
