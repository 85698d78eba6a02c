package httpproxy

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/store"
)

// webSession is a gateway session answered to an intercepted login: the
// client holds its token (as the vmware_soap_session cookie or the
// vmware-api-session-id header) and never the upstream's. Fields are
// read-only after creation except last.
type webSession struct {
	id     string // public id, for the audit trail and session listings
	token  [32]byte
	user   string
	kind   policy.SubjectKind
	groups []string // directory groups found at sign-in
	target string
	src    string
	mfa    bool // a verification code was presented at sign-in
	method string
	start  time.Time
	last   atomic.Int64 // unix nanoseconds of the last request
}

// newToken returns a random session token and its SHA-256, under which
// the session is kept: a memory dump of the map holds no usable token.
func newToken() (string, [32]byte) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	return tok, sha256.Sum256([]byte(tok))
}

func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "http-" + hex.EncodeToString(b[:])
}

// addSession registers ws, first dropping expired sessions; false when
// MaxSessions are live.
func (s *Server) addSession(ws *webSession) bool {
	now := time.Now()
	var expired []*webSession
	s.mu.Lock()
	if len(s.sessions) >= s.cfg.MaxSessions {
		for k, o := range s.sessions {
			if s.expired(o, now) {
				expired = append(expired, o)
				delete(s.sessions, k)
			}
		}
	}
	ok := !s.closed && len(s.sessions) < s.cfg.MaxSessions
	if ok {
		s.sessions[ws.token] = ws
	}
	s.mu.Unlock()
	for _, o := range expired {
		s.endSession(o, audit.SessionEnd, "session expired")
	}
	return ok
}

func (s *Server) expired(ws *webSession, now time.Time) bool {
	return now.Sub(ws.start) > s.cfg.SessionMax || now.Sub(time.Unix(0, ws.last.Load())) > s.cfg.SessionIdle
}

// lookupSession returns the live session of token on target; an expired
// one is ended.
func (s *Server) lookupSession(token, target string) *webSession {
	if len(token) != 64 {
		return nil
	}
	h := sha256.Sum256([]byte(token))
	now := time.Now()
	s.mu.Lock()
	ws := s.sessions[h]
	if ws == nil || ws.target != target {
		// A session is valid only on the target it signed in to.
		s.mu.Unlock()
		return nil
	}
	if s.expired(ws, now) {
		delete(s.sessions, h)
		s.mu.Unlock()
		s.endSession(ws, audit.SessionEnd, "session expired")
		return nil
	}
	s.mu.Unlock()
	ws.last.Store(now.UnixNano())
	return ws
}

// removeSession takes a session out of the map; false if it was gone.
func (s *Server) removeSession(ws *webSession) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[ws.token] != ws {
		return false
	}
	delete(s.sessions, ws.token)
	return true
}

// endSession audits the end of a session already removed from the map and
// logs its service-account session out of the upstream, in the background.
func (s *Server) endSession(ws *webSession, typ, why string) {
	outcome := audit.Info
	if typ == audit.SessionRevoke {
		outcome = audit.Deny
	}
	s.audit(store.AuditEvent{Type: typ, Outcome: outcome, User: ws.user, Source: ws.src, Target: ws.target,
		SessionID: ws.id, Message: why, Detail: map[string]any{"action": actionHTTP,
			"duration_ms": time.Since(ws.start).Milliseconds()}})
	s.mu.Lock()
	up := s.upstreams[ws.target]
	s.mu.Unlock()
	if up != nil {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			up.logout(slotOf(ws))
		}()
	}
}

// slotOf names the upstream service-account session a gateway session
// uses: its own, so that server-side state (property collector filters,
// views) of one user is never another's.
func slotOf(ws *webSession) string { return "session:" + ws.id }

// Recheck decides every gateway session again against snap and ends those
// whose subject may no longer reach the target.
func (s *Server) Recheck(snap *inventory.Snapshot) {
	s.mu.Lock()
	live := make([]*webSession, 0, len(s.sessions))
	for _, ws := range s.sessions {
		live = append(live, ws)
	}
	s.mu.Unlock()
	for _, ws := range live {
		d := snap.Engine.DecideHTTP(policy.Request{Kind: ws.kind, Subject: ws.user, Target: ws.target,
			Source: addrOf(ws.src), Groups: ws.groups})
		if d.Allow {
			continue
		}
		if s.removeSession(ws) {
			s.endSession(ws, audit.SessionRevoke, "access revoked: "+d.Reason)
		}
	}
}

// List implements livesession.Controller.
func (s *Server) List() []livesession.Session {
	s.mu.Lock()
	out := make([]livesession.Session, 0, len(s.sessions))
	for _, ws := range s.sessions {
		out = append(out, livesession.Session{ID: ws.id, User: ws.user, Target: ws.target, Source: ws.src,
			Action: actionHTTP, Started: ws.start, Connection: ws.id})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b livesession.Session) int { return a.Started.Compare(b.Started) })
	return out
}

// Kill implements livesession.Controller.
func (s *Server) Kill(id, by, message string) error {
	s.mu.Lock()
	var found *webSession
	for k, ws := range s.sessions {
		if ws.id == id {
			found = ws
			delete(s.sessions, k)
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		return livesession.ErrNotFound
	}
	reason := "ended by " + by
	if message != "" {
		reason += ": " + message
	}
	s.endSession(found, audit.SessionKill, reason)
	return nil
}

var _ livesession.Controller = (*Server)(nil)

// actionHTTP is the action name of web API sessions and requests in
// listings and audit events.
const actionHTTP = "http"

func addrOf(hostport string) netip.Addr {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		a, _ := netip.ParseAddr(hostport)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

// failureLimiter rate limits failed sign-ins per source address (IPv6 by
// /64). The map is reset when it grows past its bound: a flood of sources
// then costs the limiter its memory, never the gateway.
type failureLimiter struct {
	mu    sync.Mutex
	per   rate.Limit
	burst int
	m     map[netip.Addr]*rate.Limiter
}

func newFailureLimiter(perMinute float64, burst int) *failureLimiter {
	return &failureLimiter{per: rate.Limit(perMinute / 60), burst: burst, m: map[netip.Addr]*rate.Limiter{}}
}

func sourceKey(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a.Unmap()
}

// allowed reports whether src may try a password now.
func (f *failureLimiter) allowed(src netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.m[sourceKey(src)]
	return l == nil || l.Tokens() >= 1
}

// failed charges a failure to src.
func (f *failureLimiter) failed(src netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := sourceKey(src)
	l := f.m[k]
	if l == nil {
		if len(f.m) >= 100000 {
			f.m = map[netip.Addr]*rate.Limiter{}
		}
		l = rate.NewLimiter(f.per, f.burst)
		f.m[k] = l
	}
	l.Allow()
}
