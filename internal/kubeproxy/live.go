package kubeproxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/policy"
)

// liveRequest is a request being forwarded: a watch or an exec stream may
// last hours, so it is decided again whenever the resources change, and
// ended when its grant is gone.
type liveRequest struct {
	kr     policy.KubeRequest
	cancel context.CancelFunc
	// session describes a stream (exec, attach, port-forward) for the
	// live session list; nil for other requests (watches, logs).
	session *livesession.Session
	// revoked is why it was ended; written under Server.mu before cancel,
	// read by the request's own goroutine after the proxy returned.
	revoked string
}

// track registers q as live and returns its context, which Recheck (or
// the grant's end of validity) cancels.
func (s *Server) track(parent context.Context, q *request, kr policy.KubeRequest) (context.Context, *liveRequest) {
	ctx, cancel := context.WithCancel(parent)
	lr := &liveRequest{kr: kr, cancel: cancel}
	if q.attrs.stream() {
		lr.session = &livesession.Session{ID: newID(), User: q.user, Target: q.target, Account: q.d.User, Source: q.src,
			Action: "kubernetes " + q.attrs.subresource, Command: q.command, Started: q.start,
			Connection: q.attrs.namespace + "/" + q.attrs.name}
	}
	s.mu.Lock()
	s.live[lr] = struct{}{}
	s.mu.Unlock()
	if !q.d.NotAfter.IsZero() {
		// The policy's window closes while the stream runs: it is ended
		// as a revocation is, with why (a bare context deadline read as
		// a failure, or as an API server out of reach). The timer stops
		// when the request ends.
		timer := time.AfterFunc(time.Until(q.d.NotAfter), func() {
			s.endLive(lr, "the policy's validity window ended (valid_until)")
		})
		context.AfterFunc(ctx, func() { timer.Stop() })
	}
	return ctx, lr
}

func (s *Server) untrack(lr *liveRequest) {
	s.mu.Lock()
	delete(s.live, lr)
	s.mu.Unlock()
	lr.cancel()
}

// Recheck decides every live request again under snap and ends those no
// longer allowed. It is called on every resource change.
func (s *Server) Recheck(snap *inventory.Snapshot) {
	s.mu.Lock()
	live := make([]*liveRequest, 0, len(s.live))
	for lr := range s.live {
		live = append(live, lr)
	}
	s.mu.Unlock()
	for _, lr := range live {
		kr := lr.kr
		kr.Now = time.Now()
		d := snap.Engine.DecideKube(kr)
		if d.Allow {
			continue
		}
		s.mu.Lock()
		if _, ok := s.live[lr]; ok && lr.revoked == "" {
			lr.revoked = "access revoked: " + d.Reason
		}
		s.mu.Unlock()
		s.cfg.Log.Info("kubernetes request revoked", "user", kr.Subject, "target", kr.Target, "reason", d.Reason)
		lr.cancel()
	}
}

// List implements livesession.Controller: the exec, attach and
// port-forward streams running now, oldest first.
func (s *Server) List() []livesession.Session {
	s.mu.Lock()
	var out []livesession.Session
	for lr := range s.live {
		if lr.session != nil {
			out = append(out, *lr.session)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b livesession.Session) int { return a.Started.Compare(b.Started) })
	return out
}

// Kill implements livesession.Controller: it ends one stream; the
// request's audit event says who ended it and why.
func (s *Server) Kill(id, by, message string) error {
	s.mu.Lock()
	var found *liveRequest
	for lr := range s.live {
		if lr.session != nil && lr.session.ID == id {
			found = lr
			break
		}
	}
	if found != nil && found.revoked == "" {
		found.revoked = fmt.Sprintf("killed by %s: %s", by, message)
	}
	s.mu.Unlock()
	if found == nil {
		return livesession.ErrNotFound
	}
	found.cancel()
	return nil
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "k8s-" + hex.EncodeToString(b)
}

// Watches returns how many watch requests are being forwarded now.
func (s *Server) Watches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for lr := range s.live {
		if lr.kr.Verb == "watch" {
			n++
		}
	}
	return n
}

// Live returns how many requests are being forwarded now.
func (s *Server) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}
