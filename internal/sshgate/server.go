// Package sshgate is the SSH front of the gateway: it accepts stock OpenSSH
// clients, reads who and where from the login string, authenticates the
// client's own key, authorizes every channel and request against the current
// policy, logs in to the target with a credential only the gateway holds,
// and bridges the channels.
//
// During the lifecycle of a connection, the following happen in order:
//
//  1. Server.Serve accepts it and hands it to its own goroutine at once, so a
//     slow or stalled client never blocks the accept loop. Sources with too
//     many recent authentication failures are dropped before the handshake.
//  2. The handshake and authentication run under a deadline (AuthTimeout).
//     PublicKeyCallback parses the login string (a malformed one is refused
//     with a banner) and maps the verified key to an identity. An unknown
//     user or key gets the ordinary SSH authentication failure. When the
//     policy engine says the subject must present a second factor
//     (policy.Engine.SecondFactor), the key is a partial success and a
//     verification code is asked by keyboard-interactive; subjects that
//     need none authenticate exactly as before, with no store access.
//     With Config.Directory, a user may instead give a directory password
//     (password or keyboard-interactive) or a key from their directory
//     entry; the User (source ldap) is created on first sign-in, and
//     local users never consult the directory (break glass). These
//     callbacks run in the connection's goroutine, each directory request
//     bounded by the directory's timeout. With Config.SSO, a user linked
//     to a provider account and without a matching key is shown a one-use
//     sign-in URL by keyboard-interactive and asked again until the
//     browser sign-in finished (bounded rounds, within AuthTimeout); a
//     second factor, if required, is asked after it.
//  3. Each channel is authorized when its request arrives (shell, exec,
//     subsystem, direct-tcpip): authentication lasts the connection,
//     authorization is per request. A directory user's groups are read
//     for every decision (cached for the directory's cache_ttl), so that
//     removing them from a group denies their next request. The first allowed request fixes the
//     target user and dials the target once; later channels share that
//     upstream connection. The target's host key is checked before any
//     credential is offered.
//  4. Data is bridged with pooled buffers; exit status and signals are
//     passed back; byte counts go into the session's end event.
//  5. Server.Recheck runs whenever the resources change: every live grant is
//     decided again and a connection that lost access is told why and closed.
//  6. Server.Shutdown stops accepting, lets sessions finish until its
//     context ends, then closes the rest with a message; each session writes
//     its own end event on the way out.
//
// Lock order: Server.mu, then conn.decideMu or conn.dialMu, then conn.mu;
// no code holds two of them except in that order.
package sshgate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/time/rate"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/provision"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/vault"
)

// HostKeyStore remembers target host keys learned on first use.
type HostKeyStore interface {
	HostKey(ctx context.Context, target string) (store.HostKey, error)
	RecordHostKey(ctx context.Context, hk store.HostKey) error
}

// Config is what the SSH front needs. Zero durations take the defaults
// documented on each field.
type Config struct {
	// HostKey is the gateway's own host key.
	HostKey ssh.Signer
	// Snapshot returns the current resources; it is called per decision and
	// must be cheap (inventory.Inventory.Snapshot is an atomic load).
	Snapshot func() *inventory.Snapshot
	// Vault opens account keys; CA signs per-connection user certificates
	// for targets with auth: certificate.
	Vault *vault.Vault
	CA    *vault.CA
	// HostKeys stores trust-on-first-use target host keys.
	HostKeys HostKeyStore
	Audit    *audit.Log
	Log      *slog.Logger
	// Recordings records sessions that a session-recording policy covers.
	// If nil, such sessions are refused (unless the policy fails open).
	Recordings *recording.Manager
	// Commands stores the command history; nil keeps none.
	Commands CommandLog
	// Metrics counts logins, sessions, denials, decision latency and bytes;
	// nil counts nothing.
	Metrics *metrics.Metrics
	// MFA verifies the codes of subjects that must present one
	// (policy.Engine.SecondFactor). If nil, such subjects are refused.
	MFA *mfa.Service
	// Provisioner creates a subject's own login on a target when a policy
	// says provision: true and the login does not exist there yet. If
	// nil, nothing is provisioned (the login to the target fails).
	Provisioner *provision.Provisioner
	// Directory, when set, lets directory users sign in with their
	// directory password or a key on their directory entry; their
	// directory groups join every decision. Nil: keys only.
	Directory *DirectoryLogin
	// SSO, when set, lets users linked to a single sign-on provider
	// account connect without a registered key, through a browser
	// sign-in asked by keyboard-interactive. Nil: no browser sign-in.
	SSO *SSOLogin
	// Available, when set, is asked before a login is accepted: an error
	// (the shared database is unreachable) refuses new logins with its
	// message, while sessions already running go on. Fail closed: the
	// gateway cannot check revocations it cannot read.
	Available func() error

	// AuthTimeout closes a connection that has not authenticated in time.
	// Default 30s.
	AuthTimeout time.Duration
	// DialTimeout bounds connecting and logging in to a target. Default 10s.
	DialTimeout time.Duration
	// CertTTL is the validity of a user certificate signed for a target.
	// Default 5m.
	CertTTL time.Duration
	// MaxPreAuth bounds connections in handshake or authentication at
	// once; more are closed at accept. Default 256.
	MaxPreAuth int
	// FailuresPerMinute and FailureBurst rate limit failed authentications
	// per source address. Defaults 10 and 20.
	FailuresPerMinute float64
	FailureBurst      int
}

func (c *Config) setDefaults() {
	if c.AuthTimeout == 0 {
		c.AuthTimeout = 30 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.CertTTL == 0 {
		c.CertTTL = 5 * time.Minute
	}
	if c.MaxPreAuth == 0 {
		c.MaxPreAuth = 256
	}
	if c.FailuresPerMinute == 0 {
		c.FailuresPerMinute = 10
	}
	if c.FailureBurst == 0 {
		c.FailureBurst = 20
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Server is the SSH front. Create it with New.
type Server struct {
	cfg     Config
	preAuth chan struct{} // semaphore of MaxPreAuth

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	failures  map[netip.Addr]*rate.Limiter
	closing   bool
	wg        sync.WaitGroup // one per connection goroutine

	sso ssoCache // finished single sign-ons, for SSOLogin.Cache
}

// New checks the config and returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.HostKey == nil || cfg.Snapshot == nil || cfg.Vault == nil || cfg.HostKeys == nil || cfg.Audit == nil {
		return nil, errors.New("sshgate: HostKey, Snapshot, Vault, HostKeys and Audit are required")
	}
	if sl := cfg.SSO; sl != nil && (sl.Linked == nil || sl.Begin == nil || sl.Done == nil) {
		return nil, errors.New("sshgate: SSO needs Linked, Begin and Done")
	}
	cfg.setDefaults()
	return &Server{
		cfg:       cfg,
		preAuth:   make(chan struct{}, cfg.MaxPreAuth),
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
		failures:  map[netip.Addr]*rate.Limiter{},
	}, nil
}

// Serve accepts connections on ln until ln is closed or Shutdown is called.
// ctx is the parent of every connection's context.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errors.New("sshgate: server is shutting down")
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var tempDelay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off rather than
			// spin, as net/http does.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				time.Sleep(tempDelay)
				continue
			}
			return fmt.Errorf("accept ssh: %w", err)
		}
		tempDelay = 0
		if !s.admit(nc) {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(ctx, nc)
		}()
	}
}

// admit drops a connection before any work when its source is over the
// failure limit or too many handshakes are in flight.
func (s *Server) admit(nc net.Conn) bool {
	src := addrOf(nc.RemoteAddr())
	s.mu.Lock()
	lim := s.failures[src]
	s.mu.Unlock()
	if lim != nil && lim.Tokens() < 1 {
		s.cfg.Log.Warn("connection dropped: too many failed authentications", "source", nc.RemoteAddr().String())
		nc.Close()
		return false
	}
	return true
}

// noteFailure charges one failed authentication to a source address.
func (s *Server) noteFailure(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lim := s.failures[src]
	if lim == nil {
		// Bound the table: forget sources that have fully recovered.
		if len(s.failures) > 10000 {
			for a, l := range s.failures {
				if l.Tokens() >= float64(s.cfg.FailureBurst) {
					delete(s.failures, a)
				}
			}
		}
		lim = rate.NewLimiter(rate.Limit(s.cfg.FailuresPerMinute/60), s.cfg.FailureBurst)
		s.failures[src] = lim
	}
	lim.Allow()
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

func (s *Server) liveConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Recheck decides every live grant again against snap and ends the
// connections that lost access. It is called on every resource change.
func (s *Server) Recheck(snap *inventory.Snapshot) {
	for _, c := range s.liveConns() {
		c.recheck(snap)
	}
}

// ActiveConns returns how many authenticated connections are open.
func (s *Server) ActiveConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown stops accepting, waits for connections to end until ctx is done,
// then closes the remaining ones with a message and waits for their
// goroutines to write their end events.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	for _, c := range s.liveConns() {
		c.terminate("the gateway is shutting down", audit.SessionShutdown)
	}
	// Pre-auth connections hold no session; their deadline ends them, but
	// do not make shutdown wait 30 s for them.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.cfg.Log.Warn("shutdown: some connections did not end in time")
	}
	return ctx.Err()
}
