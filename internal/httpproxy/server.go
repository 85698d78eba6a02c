// Package httpproxy is the web API front of the gateway: users reach an
// http Target (a vCenter, an ESXi host, any REST API) through the
// gateway's HTTPS listener with the client they already use, and every
// request is authorized on its own, as an operation on an object, before
// the gateway reissues it with a service-account credential only it holds.
//
// During the lifecycle of one request, the following happen in order:
//
//  1. Route (Server.Wrap): the Host (and TLS SNI) TARGET.<Config.Host>, or
//     the path prefix /t/TARGET/ on the gateway's own host, selects the
//     target; every other request goes to the gateway's own handler. A
//     Host that disagrees with the SNI is answered 421.
//  2. Normalise: the escaped path is checked and decoded (cleanPath), the
//     query parsed strictly and re-encoded, the body read up to
//     Config.MaxBody; a SOAP body is parsed with DTDs refused (parseSOAP).
//  3. Authenticate: a vSphere Login (SOAP) or REST session call is
//     intercepted and answered by the gateway with a session of its own
//     (auth.go); any other request must carry such a session, an access
//     API key (X-API-KEY or Authorization: Bearer) or a console session
//     (Config.Caller). Authentication lasts the session.
//  4. Map: the vSphere catalogue (catalog.go) or the Target's rules
//     (rules.go) turn the request into an operation and an object; a
//     request nothing maps is denied and audited as unmapped.
//  5. Authorize: policy.Engine.DecideHTTP with the subject, its groups,
//     the operation and the object.
//  6. Forward (upstream.go): only an allow list of client headers is kept
//     and the service account's credential added; a session the upstream
//     no longer knows is logged in again once. The response loses the
//     upstream's cookies and session headers.
//  7. Audit: one http.request event per authenticated request, written
//     by the audit writer goroutine (Close stops it after writing all).
//
// Server.Recheck runs on every resource change and ends gateway sessions
// whose subject lost access to the target.
//
// Lock order: Server.mu, then upstream.mu; no code holds both otherwise.
package httpproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/signin"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/vault"
)

// Credentials is what the front reads from the store to check a user's
// gateway password.
type Credentials interface {
	PasswordHash(ctx context.Context, user string) (string, error)
}

// Caller is a request's identity proven by the gateway's own credentials
// (an access API key, a console session), as Config.Caller finds it.
type Caller struct {
	User string
	// Via is how: "api key" or "console".
	Via string
	// Key is the API key's id (Via "api key"), for the audit trail.
	Key string
}

// Config is what the web API front needs. Zero values take the defaults
// documented on each field.
type Config struct {
	// Snapshot returns the current resources (an atomic load).
	Snapshot func() *inventory.Snapshot
	// Vault opens the sealed service-account secrets.
	Vault *vault.Vault
	// Credentials checks gateway passwords on an intercepted login.
	Credentials Credentials
	// DirectoryPassword, when set, checks the password of a user who is
	// not local against the directory; nil: gateway passwords only.
	DirectoryPassword func(ctx context.Context, user, password string) (bool, error)
	// Groups, when set, returns the directory groups of a user, looked up
	// at sign-in and used for every request of the session.
	Groups func(ctx context.Context, user string) ([]string, error)
	// MFA verifies verification codes. If nil, subjects that must present
	// one are refused.
	MFA   *mfa.Service
	Audit *audit.Log
	Log   *slog.Logger
	// Caller, when set, authenticates a request by the gateway's own
	// credentials (API key, console session). ok false: none presented;
	// an error: presented and refused (the message is shown).
	Caller func(r *http.Request) (c Caller, ok bool, err error)
	// Available, when set, is asked before each request: an error refuses
	// it with 503 (fail closed while the store is unreachable).
	Available func() error
	// Host is the gateway's own host name (gw.example): a target vc1 is
	// served at vc1.gw.example. Empty: only the path form /t/vc1/.
	Host string
	// MaxBody caps a request body; a longer one is answered 413. Default
	// 4 MiB.
	MaxBody int64
	// SessionIdle and SessionMax end gateway sessions after this long
	// unused, or this long after sign-in. Defaults 30 minutes and 12 hours.
	SessionIdle time.Duration
	SessionMax  time.Duration
	// MaxSessions bounds live gateway sessions. Default 10000.
	MaxSessions int
	// UpstreamTimeout bounds the wait for an upstream answer's headers.
	// Default 15 minutes: WaitForUpdatesEx long-polls until something
	// changes.
	UpstreamTimeout time.Duration
	// FailuresPerMinute and FailureBurst rate limit failed sign-ins per
	// source address. Defaults 10 and 20.
	FailuresPerMinute float64
	FailureBurst      int
}

func (c *Config) setDefaults() {
	if c.MaxBody == 0 {
		c.MaxBody = 4 << 20
	}
	if c.SessionIdle == 0 {
		c.SessionIdle = 30 * time.Minute
	}
	if c.SessionMax == 0 {
		c.SessionMax = 12 * time.Hour
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 10000
	}
	if c.UpstreamTimeout == 0 {
		c.UpstreamTimeout = 15 * time.Minute
	}
	if c.FailuresPerMinute == 0 {
		c.FailuresPerMinute = 10
	}
	if c.FailureBurst == 0 {
		c.FailureBurst = 20
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	c.Host = strings.ToLower(strings.TrimSuffix(c.Host, "."))
}

// Server is the web API front. It is an http.Handler wrapper (Wrap), not a
// listener of its own: it shares the gateway's HTTPS listener.
type Server struct {
	cfg Config

	mu        sync.Mutex
	sessions  map[[32]byte]*webSession // by SHA-256 of the token
	upstreams map[string]*upstream     // by target name
	closed    bool

	failures *failureLimiter
	signin   *signin.Checker

	// events carries audit events to the writer goroutine, so that a
	// request waits for the store only when the queue is full; no event
	// is dropped.
	events    chan store.AuditEvent
	writerEnd chan struct{}
	// evMu guards closing events against a send: senders hold it for
	// reading, Close for writing.
	evMu     sync.RWMutex
	evClosed bool
	// bg counts background upstream logouts, waited for by Close.
	bg sync.WaitGroup
}

// New checks the config, starts the audit writer and returns a Server.
// Close stops it.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Snapshot == nil || cfg.Vault == nil || cfg.Audit == nil || cfg.Credentials == nil {
		return nil, errors.New("httpproxy: Snapshot, Vault, Audit and Credentials are required")
	}
	s := &Server{cfg: cfg, sessions: map[[32]byte]*webSession{}, upstreams: map[string]*upstream{},
		failures: newFailureLimiter(cfg.FailuresPerMinute, cfg.FailureBurst),
		signin: &signin.Checker{Credentials: cfg.Credentials, Snapshot: cfg.Snapshot, DirectoryPassword: cfg.DirectoryPassword,
			Groups: cfg.Groups, MFA: cfg.MFA},
		events: make(chan store.AuditEvent, 4096), writerEnd: make(chan struct{})}
	go s.auditWriter()
	return s, nil
}

// Close ends every gateway session (logging the service account out of
// the upstream), writes the queued audit events and stops the writer.
// Requests must have stopped first (the HTTPS server shut down).
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	var ended []*webSession
	for k, ws := range s.sessions {
		ended = append(ended, ws)
		delete(s.sessions, k)
	}
	s.mu.Unlock()
	for _, ws := range ended {
		s.endSession(ws, audit.SessionShutdown, "the gateway is shutting down")
	}
	s.bg.Wait()
	s.evMu.Lock()
	s.evClosed = true
	close(s.events)
	s.evMu.Unlock()
	<-s.writerEnd
	s.mu.Lock()
	for _, up := range s.upstreams {
		up.client.CloseIdleConnections()
	}
	s.mu.Unlock()
}

// auditWriter writes the queued events until events is closed. What
// arrives within auditWindow of a first event is one batch, and in a batch
// the successful read-only requests (inventory.read: the property
// collector polling that is most of a vSphere client's traffic) of one
// session become one event that counts them and lists their objects (see
// mergeReads): one store append per request capped the front's throughput
// at the store's append rate. Every other request (a change, a denial, a
// failure) keeps an event of its own, in order.
func (s *Server) auditWriter() {
	defer close(s.writerEnd)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for ev := range s.events {
		batch := []store.AuditEvent{ev}
		timer.Reset(auditWindow)
	collect:
		for len(batch) < maxAuditBatch {
			select {
			case e, ok := <-s.events:
				if !ok {
					break collect
				}
				batch = append(batch, e)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		for _, e := range mergeReads(batch) {
			if err := s.cfg.Audit.Write(context.Background(), e); err != nil {
				s.cfg.Log.Error("audit", "type", e.Type, "user", e.User, "err", err)
			}
		}
	}
}

// Bounds of one audit batch; a gateway killed with SIGKILL may lose the
// last window of request events.
const (
	auditWindow   = 100 * time.Millisecond
	maxAuditBatch = 4096
	// maxMergedObjects bounds the objects listed in a merged event.
	maxMergedObjects = 100
)

// mergeReads merges the successful inventory.read request events of each
// session (or API-key caller) in batch into the first of them: its
// requests counts them, objects lists their distinct objects, and
// latency_ms is the slowest. Other events pass unchanged, in order.
func mergeReads(batch []store.AuditEvent) []store.AuditEvent {
	out := make([]store.AuditEvent, 0, len(batch))
	merged := map[string]int{}
	for _, ev := range batch {
		if ev.Type != EventRequest || ev.Outcome != audit.Success || ev.Detail["operation"] != OpReadOnly {
			out = append(out, ev)
			continue
		}
		obj, _ := ev.Detail["object"].(string)
		lat, _ := ev.Detail["latency_ms"].(float64)
		key := ev.SessionID + "\x00" + ev.User + "\x00" + ev.Target
		i, ok := merged[key]
		if !ok {
			cp := ev
			cp.Detail = maps.Clone(ev.Detail)
			cp.Detail["requests"] = 1
			cp.Detail["objects"] = []string{obj}
			merged[key] = len(out)
			out = append(out, cp)
			continue
		}
		p := &out[i]
		n := p.Detail["requests"].(int) + 1
		p.Detail["requests"] = n
		if objs := p.Detail["objects"].([]string); len(objs) < maxMergedObjects && !slices.Contains(objs, obj) {
			p.Detail["objects"] = append(objs, obj)
		}
		if lat > p.Detail["latency_ms"].(float64) {
			p.Detail["latency_ms"] = lat
		}
		p.Message = fmt.Sprintf("%d %s requests on %s", n, OpReadOnly, ev.Target)
	}
	return out
}

// audit queues an event for the writer.
func (s *Server) audit(ev store.AuditEvent) {
	s.evMu.RLock()
	defer s.evMu.RUnlock()
	if s.evClosed {
		// The writer is gone: write directly.
		if err := s.cfg.Audit.Write(context.Background(), ev); err != nil {
			s.cfg.Log.Error("audit", "type", ev.Type, "user", ev.User, "err", err)
		}
		return
	}
	s.events <- ev
}

// Event types of the web API front.
const (
	// EventRequest is one request to an http target: allowed, denied
	// (by policy, or unmapped), or failed upstream.
	EventRequest = "http.request"
)
