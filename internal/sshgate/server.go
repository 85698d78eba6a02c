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
//     many recent authentication failures are dropped before the handshake,
//     and the pre-authentication pool (preAuthPool: a cap per source, early
//     drops, room made by the sources that connect most) may refuse it or
//     close another connection to make room.
//  2. The handshake and authentication run under a deadline: AuthStartTimeout
//     until the client first asks to authenticate, AuthTimeout in all.
//     Failed attempts are charged to the source at once and given back if
//     the connection logs in as the same user.
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
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/authlimit"
	"github.com/portcullis/portcullis/internal/cmdqueue"
	"github.com/portcullis/portcullis/internal/fdlimit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/provision"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/upstream"
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
	// JITUsed, if set, records that a session relied on the
	// just-in-time grant of request (front "ssh"); it must not block for
	// long.
	JITUsed func(ctx context.Context, request, session, front string)
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

	// Files keeps new connections and sessions within the process's limit
	// of open files: near it, new sessions are refused with one line and,
	// nearer still, new connections are closed at accept, while sessions
	// already running go on. Nil takes a Budget with the default reserve.
	Files *fdlimit.Budget

	// AuthTimeout closes a connection that has not authenticated in time,
	// counted from accept. Default 30s.
	AuthTimeout time.Duration
	// AuthStartTimeout closes a connection whose client has not asked to
	// authenticate (SSH_MSG_USERAUTH_REQUEST) this long after accept, so
	// that a silent connection holds its pre-authentication place briefly.
	// Default 10s; never more than AuthTimeout.
	AuthStartTimeout time.Duration
	// Agents reaches targets whose agent dials out to the gateway
	// (resource.Target.Via "agent"); the session to such a target is the
	// same as to any other once the byte stream is there. Nil: those
	// targets are unreachable.
	Agents upstream.AgentDialer
	// DialTimeout bounds connecting and logging in to a target. Default 10s.
	DialTimeout time.Duration
	// CertTTL is the validity of a user certificate signed for a target.
	// Default 5m.
	CertTTL time.Duration
	// MaxPreAuth bounds connections in handshake or authentication at
	// once (the "full" of OpenSSH's MaxStartups start:rate:full): at it, a
	// source's first connection takes the place of the most silent one of
	// the source holding the most, and others are closed at accept.
	// Default 100.
	MaxPreAuth int
	// PreAuthStart and PreAuthRate are the start and rate of MaxStartups:
	// from PreAuthStart pending connections on, a new connection from a
	// source that already has one pending is closed at accept with a
	// probability rising from PreAuthRate percent to 100 at MaxPreAuth.
	// Defaults 10 and 30.
	PreAuthStart int
	PreAuthRate  int
	// MaxPreAuthPerSource bounds the connections in handshake or
	// authentication from one source address (one /64 for IPv6).
	// Default 10.
	MaxPreAuthPerSource int
	// AcceptEnv lists the environment variables a client may pass to the
	// target (env requests, ssh -o SetEnv / SendEnv), as names or globs
	// ("LC_*"), like sshd's AcceptEnv. Others are dropped. Nil takes
	// DefaultAcceptEnv; an empty, non-nil list passes none.
	AcceptEnv []string
	// FailuresPerMinute and FailureBurst rate limit failed authentications
	// per source address. Defaults 10 and 20.
	FailuresPerMinute float64
	FailureBurst      int
	// Failures, when set, is the budget of failed sign-ins to charge
	// instead of one of the front's own from FailuresPerMinute and
	// FailureBurst: the gateway gives its fronts one, so that a guesser
	// has one budget whatever protocol it guesses through.
	Failures *authlimit.Limiter
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
	if c.AuthStartTimeout == 0 {
		c.AuthStartTimeout = 10 * time.Second
	}
	c.AuthStartTimeout = min(c.AuthStartTimeout, c.AuthTimeout)
	if c.MaxPreAuth == 0 {
		c.MaxPreAuth = 100
	}
	if c.PreAuthStart == 0 {
		c.PreAuthStart = min(10, c.MaxPreAuth)
	}
	if c.PreAuthRate == 0 {
		c.PreAuthRate = 30
	}
	if c.MaxPreAuthPerSource == 0 {
		c.MaxPreAuthPerSource = 10
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
	if c.Files == nil {
		c.Files = &fdlimit.Budget{}
	}
}

// Server is the SSH front. Create it with New.
type Server struct {
	cfg       Config
	acceptEnv []envPattern // compiled Config.AcceptEnv
	preAuth   *preAuthPool // connections not authenticated yet
	drops     *dropLog     // connections dropped at accept, for log and metrics
	ahead     aheadBudget  // connections made to targets ahead of a request
	// filesAudited is when (unix ns) a session refused near the open-file
	// limit was last audited; see auditFilesRefusal.
	filesAudited atomic.Int64

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	failures  *authlimit.Limiter
	closing   bool
	wg        sync.WaitGroup // one per connection goroutine

	sso ssoCache // finished single sign-ons, for SSOLogin.Cache

	// commands writes interactive lines to Config.Commands off the data
	// path; nil when Config.Commands is nil.
	commands *cmdqueue.Queue
	// bursts collects the garbage a burst of logins leaves once it ends.
	bursts *burstCollector
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
	switch {
	case cfg.MaxPreAuth < 1 || cfg.PreAuthStart < 1 || cfg.PreAuthStart > cfg.MaxPreAuth:
		return nil, fmt.Errorf("sshgate: want 1 <= PreAuthStart (%d) <= MaxPreAuth (%d)", cfg.PreAuthStart, cfg.MaxPreAuth)
	case cfg.PreAuthRate < 1 || cfg.PreAuthRate > 100:
		return nil, fmt.Errorf("sshgate: PreAuthRate %d is not a percentage from 1 to 100", cfg.PreAuthRate)
	case cfg.MaxPreAuthPerSource < 1:
		return nil, fmt.Errorf("sshgate: MaxPreAuthPerSource %d is not positive", cfg.MaxPreAuthPerSource)
	}
	acceptEnv, err := compileEnvPatterns(cfg.AcceptEnv)
	if err != nil {
		return nil, fmt.Errorf("sshgate: %w", err)
	}
	failures := cfg.Failures
	if failures == nil {
		failures = authlimit.New(cfg.FailuresPerMinute, cfg.FailureBurst)
	}
	var commands *cmdqueue.Queue
	if cfg.Commands != nil {
		commands = cmdqueue.New(cfg.Commands, cfg.Log)
	}
	return &Server{
		commands:  commands,
		cfg:       cfg,
		acceptEnv: acceptEnv,
		preAuth:   newPreAuthPool(cfg.MaxPreAuthPerSource, cfg.PreAuthStart, cfg.PreAuthRate, cfg.MaxPreAuth),
		drops:     newDropLog(cfg.Log, cfg.Metrics, dropLogInterval),
		listeners: map[net.Listener]struct{}{},
		conns:     map[*conn]struct{}{},
		failures:  failures,
		bursts:    newBurstCollector(cfg.Log),
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
			// Out of file descriptors and the like: back off and keep
			// accepting, as net/http does, rather than stop the gateway.
			if temporaryAcceptError(err) {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				s.cfg.Log.Warn("accept failed; retrying", "err", err, "retry_in", tempDelay)
				select {
				case <-time.After(tempDelay):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			return fmt.Errorf("accept ssh: %w", err)
		}
		tempDelay = 0
		entry, ok := s.admit(nc)
		if !ok {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(ctx, nc, entry)
		}()
	}
}

// admit drops a connection before any work when its source is over the
// failure limit, the process is near its limit of open files, or the
// pre-authentication pool refuses it (preAuthPool);
// otherwise it returns the connection's place in that pool. It runs in the
// accept loop and never blocks.
func (s *Server) admit(nc net.Conn) (*preAuthEntry, bool) {
	src := authlimit.AddrOf(nc.RemoteAddr())
	if s.failures.Spent(src) {
		s.drops.drop(src, metrics.DropFailures, "too many failed authentications")
		nc.Close()
		return nil, false
	}
	// A connection costs one descriptor; it is still accepted while half
	// the reserve is free, so that its client can be told why its session
	// is refused (sessionFiles), rather than see the connection reset.
	if !s.cfg.Files.Admit(1, 50) {
		s.drops.drop(src, metrics.DropFiles, "open files near the limit")
		nc.Close()
		return nil, false
	}
	e, evicted, reason := s.preAuth.admit(nc, src)
	if evicted != nil {
		// Counted, not logged: the newcomer's source is the one to watch,
		// and a flood would otherwise write a line per connection.
		s.cfg.Metrics.Dropped(metrics.DropEvicted)
		evicted.Close()
	}
	if e == nil {
		s.drops.drop(src, dropClass[reason], reason)
		nc.Close()
		return nil, false
	}
	return e, true
}

// dropLogInterval is how often dropLog writes one line per source with the
// count of the connections it dropped since the first.
const dropLogInterval = time.Minute

// dropClass maps preAuthPool's reasons to their metrics class.
var dropClass = map[string]string{
	dropPerSource: metrics.DropPerSource,
	dropEarly:     metrics.DropEarly,
	dropFull:      metrics.DropFull,
}

// noteFailure charges one failed authentication to a source address and
// returns what gives it back, or nil when the source had none left. A
// connection that logs in gives back every failure it was charged, so only
// connections that end without logging in count: the keys a client offers
// before the one that lets it in are not guesses. The charge is taken at
// once, not at the end, so that connections running side by side see it.
// The budget is per IPv4 address or IPv6 /64, like the pre-auth pool.
func (s *Server) noteFailure(src netip.Addr) (refund func()) {
	refund, ok := s.failures.Charge(src)
	if !ok {
		return nil // nothing left: admit drops this source's next connection
	}
	return refund
}

// temporaryAcceptError reports whether an accept error passes: the process
// or system is out of file descriptors or buffers, or one connection was
// aborted before it was accepted. Closing connections frees descriptors,
// so the listener is worth keeping.
func temporaryAcceptError(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
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

// shutdownCommandWait bounds how long Shutdown waits for queued command
// history lines once every session has ended or been ended.
const shutdownCommandWait = 5 * time.Second

// drainCommands waits for the command history queue, and logs the lines
// that could not be stored before the process exits.
func (s *Server) drainCommands() {
	if s.commands == nil {
		return
	}
	if n := s.commands.Drain(shutdownCommandWait); n > 0 {
		s.cfg.Log.Error("shutdown: command history lines not stored", "lines", n)
	}
}

// Shutdown stops accepting, tells every live session how long it has (the
// time left to ctx's deadline), waits for connections to end until ctx is
// done, then closes the remaining ones with a message and waits for their
// goroutines to write their end events, and last waits (at most
// shutdownCommandWait) for the command history lines they queued.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.drops.stop()
	s.bursts.stop()
	defer s.drainCommands()

	// Every live session is told at once how long it has. The lines are
	// written in the background and end with their connections, which
	// all end before Shutdown returns.
	var notices sync.WaitGroup
	defer notices.Wait()
	msg := "portcullis: the gateway is shutting down; new sessions are refused"
	if dl, ok := ctx.Deadline(); ok {
		msg = fmt.Sprintf("portcullis: the gateway is shutting down: this session will be closed in %v", time.Until(dl).Round(time.Second))
	}
	for _, c := range s.liveConns() {
		c.tell(msg, &notices)
	}

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
