// Package pgproxy is the PostgreSQL front of the gateway: stock clients
// (psql, pgx, libpq programs) connect to it with a login string for a user
// name (alice~postgres~db1: the same grammar as SSH), and it opens the
// database as the target user with a password only the gateway holds,
// relaying the protocol and auditing every statement.
//
// During the lifecycle of a connection, the following happen in order:
//
//  1. Server.Serve accepts it and hands it to its own goroutine. The
//     pre-authentication bounds (a cap per source address and in all)
//     may close it at once; the whole startup exchange runs under
//     Config.StartupTimeout.
//  2. Startup: an SSLRequest is answered 'S' and TLS starts with the
//     gateway's certificate; a connection that opens with a TLS handshake
//     (PostgreSQL 17 direct TLS) must negotiate ALPN "postgresql"; a
//     GSSENCRequest is answered 'N'. A StartupMessage before TLS is
//     refused with SQLSTATE 08P01. Protocol 3.0 and 3.2 are spoken; a
//     later 3.x is answered with NegotiateProtocolVersion for 3.2.
//     A CancelRequest is handled on its own (cancel.go) and the
//     connection closed.
//  3. Authentication: the user name is parsed as a login string, the
//     database is decided by policy.Engine.DecideProxy, and the password
//     is asked in clear inside TLS (AuthenticationCleartextPassword): the
//     gateway checks it against the user's gateway password, the
//     directory, or an access API key; when a verification code is
//     required, it is the password's last six digits. Why cleartext and
//     not SCRAM: see README "Databases".
//  4. Upstream: pgconn logs in to the target as the target user with the
//     sealed password (SCRAM-SHA-256 only), with the Target's TLS check,
//     passing only allowed startup parameters; the connection is then
//     hijacked and the client is sent the server's parameters and the
//     gateway's own cancel key.
//  5. Relay (relay.go): each client message is framed (capped at
//     Config.MaxMessage), statements are checked against the policy's
//     statement rules and queued for audit, and results are matched back
//     to them from CommandComplete. The session is recorded as text when
//     a session-recording policy says so.
//  6. Server.Recheck runs on every resource change and ends sessions that
//     lost access; Server.Shutdown closes the listener and then every
//     session once its context ends.
//
// Lock order: Server.mu, then session.mu; no code holds both otherwise.
package pgproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/authlimit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/vault"
)

// Credentials is what the front reads from the store to check a password:
// the user's gateway password hash and access API keys.
type Credentials interface {
	PasswordHash(ctx context.Context, user string) (string, error)
	GetAPIKey(ctx context.Context, id string) (store.APIKey, error)
}

// Config is what the PostgreSQL front needs. Zero values take the
// defaults documented on each field.
type Config struct {
	// TLS holds the gateway's certificate; the front adds ALPN
	// "postgresql". Required: the front never speaks without TLS.
	TLS *tls.Config
	// Snapshot returns the current resources (an atomic load).
	Snapshot func() *inventory.Snapshot
	// Vault opens the sealed passwords of database accounts.
	Vault *vault.Vault
	// Credentials checks gateway passwords and API keys.
	Credentials Credentials
	// DirectoryPassword, when set, checks the password of a user who is
	// not local against the directory (creating the User on first
	// sign-in); nil: gateway passwords and API keys only.
	DirectoryPassword func(ctx context.Context, user, password string) (bool, error)
	// MFA verifies verification codes. If nil, subjects that must present
	// one are refused.
	MFA   *mfa.Service
	Audit *audit.Log
	Log   *slog.Logger
	// Recordings records sessions a session-recording policy covers, as
	// text of statements and result tags. If nil, such sessions are
	// refused unless the policy fails open.
	Recordings *recording.Manager
	// Available, when set, is asked before a login is accepted: an error
	// refuses new logins (fail closed while the store is unreachable).
	Available func() error
	// Peers, when set, carries cancel requests to the other gateways
	// sharing the store, for sessions this gateway does not hold.
	Peers CancelPeers

	// StartupTimeout bounds the startup exchange (TLS, startup message,
	// password), from accept. Default 30s.
	StartupTimeout time.Duration
	// DialTimeout bounds connecting and logging in to the database.
	// Default 10s.
	DialTimeout time.Duration
	// MaxMessage caps a client message's body; a longer one is answered
	// SQLSTATE 54000 and the connection closed. Default 1 MiB.
	MaxMessage int
	// MaxPreAuthPerSource and MaxPreAuth bound the connections not yet
	// authenticated from one source address (one /64 for IPv6) and in
	// all; others are closed at accept. Defaults 10 and 100.
	MaxPreAuthPerSource int
	MaxPreAuth          int
	// MaxSessions bounds live sessions, and with them the map of cancel
	// keys (the unbounded map of GHSA-qw79-rh95-853p). Default 10000.
	MaxSessions int
	// FailuresPerMinute and FailureBurst rate limit failed sign-ins and
	// cancel requests with a wrong key per source address (one /64 for
	// IPv6), as package authlimit does: each sign-in is charged before its
	// password is checked and refunded when it succeeds, and a source with
	// nothing left is refused unchecked. Defaults 10 and 20, as the SSH
	// front.
	FailuresPerMinute float64
	FailureBurst      int
	// Failures, when set, is the budget to charge instead of one of the
	// front's own from FailuresPerMinute and FailureBurst: the gateway
	// gives its fronts one, so that a guesser has one budget whatever
	// protocol it guesses through.
	Failures *authlimit.Limiter
}

func (c *Config) setDefaults() {
	if c.StartupTimeout == 0 {
		c.StartupTimeout = 30 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = 1 << 20
	}
	if c.MaxPreAuthPerSource == 0 {
		c.MaxPreAuthPerSource = 10
	}
	if c.MaxPreAuth == 0 {
		c.MaxPreAuth = 100
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 10000
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
	if c.Failures == nil {
		c.Failures = authlimit.New(c.FailuresPerMinute, c.FailureBurst)
	}
}

// Server is the PostgreSQL front.
type Server struct {
	cfg Config
	tls *tls.Config

	mu       sync.Mutex
	ln       net.Listener
	closed   bool
	conns    map[net.Conn]struct{} // every accepted connection, to close at shutdown
	sessions map[*session]struct{}
	// byPID maps the gateway's cancel process ids to live sessions.
	byPID map[uint32]*session
	// acks holds the charges of cancel requests passed to the peers,
	// until one acknowledges the key (cancel.go).
	acks map[cancelKey]pendingAck
	// preAuth counts connections not yet authenticated, per source.
	preAuth      map[netip.Prefix]int
	preAuthTotal int

	wg sync.WaitGroup // connection goroutines

	// stmts tells the writer goroutine (auditWriter) which sessions have
	// audit events and statements queued (session.queueAudit), so that
	// a session waits for the store only when its queue is full, and no
	// event is dropped.
	stmts chan *session

	// failures is the budget of failed sign-ins (and guessed cancel
	// keys) per source.
	failures *authlimit.Limiter
	// served is closed when Serve has returned and its audit writer has
	// written everything queued (waitServed).
	served chan struct{}
}

// New checks the config and returns a Server.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	switch {
	case cfg.TLS == nil:
		return nil, errors.New("pgproxy: a TLS certificate is required")
	case cfg.Snapshot == nil || cfg.Vault == nil || cfg.Audit == nil || cfg.Credentials == nil:
		return nil, errors.New("pgproxy: Snapshot, Vault, Audit and Credentials are required")
	}
	t := cfg.TLS.Clone()
	t.NextProtos = []string{alpnPostgres}
	t.MinVersion = max(t.MinVersion, tls.VersionTLS12)
	return &Server{cfg: cfg, tls: t, conns: map[net.Conn]struct{}{}, sessions: map[*session]struct{}{},
		byPID: map[uint32]*session{}, acks: map[cancelKey]pendingAck{}, preAuth: map[netip.Prefix]int{}, stmts: make(chan *session, 1024),
		failures: cfg.Failures, served: make(chan struct{})}, nil
}

// alpnPostgres is the ALPN protocol of PostgreSQL over TLS.
const alpnPostgres = "postgresql"

// Serve accepts connections until the listener is closed (Shutdown). It
// owns the statement audit writer and the peer cancel listener, both
// stopped when it returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("pgproxy: server closed")
	}
	s.ln = ln
	s.mu.Unlock()

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.auditWriter()
	}()
	peerCtx, stopPeers := context.WithCancel(ctx)
	peersDone := make(chan struct{})
	go func() {
		defer close(peersDone)
		s.watchPeers(peerCtx)
	}()
	defer func() {
		stopPeers()
		<-peersDone
		s.wg.Wait()
		close(s.stmts)
		<-writerDone
		close(s.served)
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// Out of descriptors and the like: wait a moment, as
			// net/http does, rather than spin.
			s.cfg.Log.Warn("accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		src := authlimit.AddrOf(nc.RemoteAddr())
		if !s.admit(nc, src) {
			nc.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.forget(nc)
			s.handle(ctx, nc, src)
		}()
	}
}

// admit registers a new connection and takes its pre-authentication place;
// false: a bound is reached (or the server is closing) and it is closed.
func (s *Server) admit(nc net.Conn, src netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := authlimit.SourcePrefix(src)
	if s.closed || s.preAuth[key] >= s.cfg.MaxPreAuthPerSource || s.preAuthTotal >= s.cfg.MaxPreAuth {
		return false
	}
	s.preAuth[key]++
	s.preAuthTotal++
	s.conns[nc] = struct{}{}
	return true
}

// authenticated gives back a connection's pre-authentication place; it is
// called once per connection, when it authenticated or ended.
func (s *Server) authenticated(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := authlimit.SourcePrefix(src)
	s.preAuthTotal--
	if s.preAuth[key]--; s.preAuth[key] <= 0 {
		delete(s.preAuth, key)
	}
}

func (s *Server) forget(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

// Shutdown stops accepting, lets sessions run until ctx ends, then closes
// every connection left. Each session writes its own end event.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			s.waitServed()
			return nil
		}
		select {
		case <-ctx.Done():
			// Outside s.mu: terminate may wait on a session, and admit,
			// unregister and cancels need s.mu meanwhile.
			for _, sess := range s.live() {
				sess.terminate("the gateway is shutting down", audit.SessionShutdown)
			}
			s.mu.Lock()
			for nc := range s.conns {
				nc.Close()
			}
			s.mu.Unlock()
			s.waitServed()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// servedWait bounds how long Shutdown waits for Serve to write the events
// still queued: about one audit write's own bound.
const servedWait = 10 * time.Second

// waitServed waits until Serve has returned, and with it the audit writer
// has written every queued event (session ends, the last statement
// batches), so that what the caller does next (the shutdown checkpoint)
// covers them. It returns at once if Serve never ran.
func (s *Server) waitServed() {
	s.mu.Lock()
	started := s.ln != nil
	s.mu.Unlock()
	if !started {
		return
	}
	select {
	case <-s.served:
	case <-time.After(servedWait):
		s.cfg.Log.Error("pgproxy shutdown: queued audit events not written in time")
	}
}

// Recheck decides every live session again against snap and ends those
// that lost access.
func (s *Server) Recheck(snap *inventory.Snapshot) {
	for _, sess := range s.live() {
		sess.recheck(snap)
	}
}

func (s *Server) live() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		out = append(out, sess)
	}
	return out
}

// List implements livesession.Controller.
func (s *Server) List() []livesession.Session {
	var out []livesession.Session
	for _, sess := range s.live() {
		out = append(out, livesession.Session{ID: sess.id, User: sess.ident.Name, Target: sess.login.Target,
			Account: sess.targetUser, Source: sess.src, Action: actionDatabase, Command: sess.database,
			Started: sess.started, Recorded: sess.rec != nil, Connection: sess.id})
	}
	slices.SortFunc(out, func(a, b livesession.Session) int { return a.Started.Compare(b.Started) })
	return out
}

// Kill implements livesession.Controller.
func (s *Server) Kill(id, by, message string) error {
	for _, sess := range s.live() {
		if sess.id != id {
			continue
		}
		reason := "ended by " + by
		if message != "" {
			reason += ": " + message
		}
		sess.terminate(reason, audit.SessionKill)
		return nil
	}
	return livesession.ErrNotFound
}

var _ livesession.Controller = (*Server)(nil)

// register adds a live session with a fresh cancel key; false when
// MaxSessions are live.
func (s *Server) register(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) >= s.cfg.MaxSessions || s.closed {
		return false
	}
	for {
		pid := randomPID()
		if _, taken := s.byPID[pid]; !taken {
			sess.pid = pid
			s.byPID[pid] = sess
			break
		}
	}
	s.sessions[sess] = struct{}{}
	return true
}

func (s *Server) unregister(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sess)
	if s.byPID[sess.pid] == sess {
		delete(s.byPID, sess.pid)
	}
}

// actionDatabase is the action name of a database session in live
// listings, recordings and audit events.
const actionDatabase = "database"
