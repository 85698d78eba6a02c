// Package kubeproxy is the Kubernetes front of the gateway: users point a
// stock kubectl at the gateway's HTTPS listener (a kubeconfig from
// `portcullis kubeconfig`), and every request is authorized on its own
// before the gateway reissues it to the API server with a credential only
// it holds, impersonating the cluster user and groups the policy allows.
//
// During the lifecycle of one request, the following happen in order:
//
//  1. Route (Server.Wrap, route.go): the host name TARGET.<Config.Host>
//     (Host and TLS server name agreeing) or the path prefix /k8s/TARGET/
//     on any other host selects a protocol: kubernetes target; every other
//     request goes to next.
//  2. Authenticate: the request must carry an access API key of the
//     gateway as a bearer token (Config.Caller), a long-lived one or one
//     IssueCredential minted. Console sessions are not
//     accepted here: a cookie is no credential for kubectl, and refusing
//     it keeps cross-site requests out.
//  3. Parse (parse.go): the path must be plain (no percent-encoding, no
//     empty or dot segments), then the upstream's own request parser
//     (k8s.io/apiserver's RequestInfoFactory) gives verb, API group,
//     resource, subresource, namespace and name exactly as the API server
//     will see them. Client Impersonate-* headers become the identity the
//     client asks for (kubectl --as, --as-group).
//  4. Authorize: policy.Engine.DecideKube. Discovery (/api, /apis,
//     /openapi, /version) needs only some access to the target. A
//     SelfSubjectAccessReview (kubectl auth can-i) the policy denies is
//     answered by the gateway with the policy's reason; one it allows goes
//     to the API server, whose RBAC answers for the impersonated identity.
//  5. Forward (forward.go): every client Authorization, Impersonate-* and
//     X-Remote-* header is removed; the gateway's bearer token and the
//     decided Impersonate-User / Impersonate-Group are set, on every
//     request, upgrades included. A long request (watch, exec) is
//     registered as live. Exec and attach are not forwarded as bytes:
//     they are terminated on both sides (stream.go: the client's
//     WebSocket v5 or SPDY stream served here, a new stream to the API
//     server with only the gateway's headers, opened first so that its
//     refusal answers the client's upgrade request) and run as recorded
//     sessions (record.go: session.start, an asciicast recording through
//     recording.Manager when a session-recording policy says so,
//     fail-closed by default, session.end with its SHA-256 and the exit
//     status). Port-forward is terminated on both sides too
//     (portforward.go): each connection through the tunnel is a
//     kube.portforward event (port, bytes each way, duration, outcome);
//     its bytes are not recorded.
//  6. Audit: one kube.request event per request (user, impersonated user
//     and groups, verb, resource, namespace, name, decision, status,
//     latency), written by the audit writer goroutine (Close stops it
//     after writing all).
//
// Server.IssueCredential (credential.go) signs a user in for kubectl's
// exec credential plugin (portcullis kube-credential, through the API's
// POST /api/v1/kube/credentials) and mints a short-lived access API key,
// which step 2 then accepts like any other.
//
// Server.Recheck runs on every resource change and ends live requests
// (watches, exec streams) whose subject lost the grant.
//
// Lock order: Server.mu only; it is never held while calling out.
package kubeproxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/cmdqueue"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/vault"
)

// Caller is a request's identity proven by an access API key of the
// gateway, as Config.Caller finds it.
type Caller struct {
	User string
	// Key is the API key's id, for the audit trail.
	Key string
}

// Config is what the Kubernetes front needs. Zero values take the defaults
// documented on each field.
type Config struct {
	// Snapshot returns the current resources (an atomic load).
	Snapshot func() *inventory.Snapshot
	// Vault opens the sealed service-account token.
	Vault *vault.Vault
	Audit *audit.Log
	Log   *slog.Logger
	// Caller authenticates a request by an access API key presented as
	// X-API-KEY (the front copies a bearer token there first). ok false:
	// none presented; an error: presented and refused.
	Caller func(r *http.Request) (c Caller, ok bool, err error)
	// Groups, when set, returns the directory groups of a user.
	Groups func(ctx context.Context, user string) ([]string, error)
	// Available, when set, is asked before each request: an error refuses
	// it with 503 (fail closed while the store is unreachable).
	Available func() error
	// DialTimeout bounds connecting to an API server. Default 10 seconds.
	DialTimeout time.Duration
	// Host is the gateway's host name under which targets are served by
	// host (k1.gw.example for gw.example), the web API front's too: a
	// target name is unique across protocols. Empty: by path only.
	Host string
	// Recordings records exec and attach sessions; nil: a session that a
	// session-recording policy covers is refused (on_failure: terminate)
	// or runs unrecorded (continue).
	Recordings *recording.Manager
	// Commands, when set, stores every request but discovery as a row of
	// the command history (history.go), through a queue that drops rather
	// than holds a request.
	Commands cmdqueue.Store
}

// Server is the Kubernetes front. It is an http.Handler wrapper (Wrap), not
// a listener of its own: it shares the gateway's HTTPS listener.
type Server struct {
	cfg Config
	// cred is set by EnableCredentials.
	cred atomic.Pointer[CredentialConfig]
	// cmds is the command history queue; nil without Config.Commands.
	cmds *cmdqueue.Queue

	mu        sync.Mutex
	upstreams map[string]*upstream // by target name
	live      map[*liveRequest]struct{}

	// events carries audit events to the writer goroutine; no event is
	// dropped (a full queue makes the request wait).
	events    chan store.AuditEvent
	writerEnd chan struct{}
	// evMu guards closing events against a send: senders hold it for
	// reading, Close for writing.
	evMu     sync.RWMutex
	evClosed bool
}

// New checks the config, starts the audit writer and returns a Server.
// Close stops it.
func New(cfg Config) (*Server, error) {
	if cfg.Snapshot == nil || cfg.Vault == nil || cfg.Audit == nil || cfg.Caller == nil {
		return nil, errors.New("kubeproxy: Snapshot, Vault, Audit and Caller are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	cfg.Host = hostOnly(cfg.Host)
	s := &Server{cfg: cfg, upstreams: map[string]*upstream{}, live: map[*liveRequest]struct{}{},
		events: make(chan store.AuditEvent, 4096), writerEnd: make(chan struct{})}
	if cfg.Commands != nil {
		s.cmds = cmdqueue.New(cfg.Commands, cfg.Log)
	}
	go s.auditWriter()
	return s, nil
}

// Close ends live requests, writes the queued audit events and stops the
// writer. Requests must have stopped first (the HTTPS server shut down);
// hijacked streams (exec) are ended here.
func (s *Server) Close() {
	s.mu.Lock()
	for lr := range s.live {
		lr.cancel()
	}
	ups := s.upstreams
	s.upstreams = map[string]*upstream{}
	s.mu.Unlock()
	for _, up := range ups {
		up.transport.CloseIdleConnections()
	}
	s.evMu.Lock()
	if !s.evClosed {
		s.evClosed = true
		close(s.events)
	}
	s.evMu.Unlock()
	<-s.writerEnd
	if s.cmds != nil {
		if n := s.cmds.Drain(shutdownCommandWait); n > 0 {
			s.cfg.Log.Error("shutdown: command history rows not stored", "rows", n)
		}
	}
}

// CommandsDropped is how many command history rows were dropped because
// the queue was full (the audit trail has those requests).
func (s *Server) CommandsDropped() uint64 {
	if s.cmds == nil {
		return 0
	}
	return s.cmds.Dropped()
}

func (s *Server) auditWriter() {
	defer close(s.writerEnd)
	for ev := range s.events {
		if err := s.cfg.Audit.Write(context.Background(), ev); err != nil {
			s.cfg.Log.Error("audit", "type", ev.Type, "user", ev.User, "err", err)
		}
	}
}

// audit queues an event for the writer.
func (s *Server) audit(ev store.AuditEvent) {
	s.evMu.RLock()
	defer s.evMu.RUnlock()
	if s.evClosed {
		if err := s.cfg.Audit.Write(context.Background(), ev); err != nil {
			s.cfg.Log.Error("audit", "type", ev.Type, "user", ev.User, "err", err)
		}
		return
	}
	s.events <- ev
}

// EventRequest is the audit event type of one request to a kubernetes
// target: allowed, denied, or failed upstream.
const EventRequest = "kube.request"

// EventStart is the audit event written before a watch or an exec,
// attach or port-forward stream is forwarded (its kube.request event
// follows when it ends).
const EventStart = "kube.start"

// PathPrefix is the path under which kubernetes targets are served on the
// gateway's host: /k8s/TARGET/api/v1/...
const PathPrefix = "/k8s/"

// ServerURL returns the kubeconfig server URL of target on a gateway
// reached at base (https://gw.example:8443).
func ServerURL(base *url.URL, target string) string {
	u := *base
	u.Path = PathPrefix + target
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}
