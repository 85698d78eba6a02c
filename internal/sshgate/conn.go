package sshgate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/authlimit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/loginstr"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/pathrule"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/quickack"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/upstream"
)

// Permission extension keys carrying the verified identity from the
// authentication callback to the connection. Identity is only ever read
// from the Permissions that x/crypto returns for the key that was verified
// (CVE-2024-45337).
const (
	extIdentity = "portcullis-identity"
	extKeyFP    = "portcullis-key-fp"
	extKey      = "portcullis-key" // wire format of the verified key
	// extMFA is the kind of second factor presented (mfa.KindTOTP or
	// mfa.KindRecovery); absent when none was asked.
	extMFA = "portcullis-mfa"
)

// conn is one authenticated client connection.
type conn struct {
	srv    *Server
	id     string
	ctx    context.Context
	cancel context.CancelFunc

	sshConn *ssh.ServerConn
	ident   inventory.Identity
	key     ssh.PublicKey // the verified client key
	login   loginstr.Login
	source  netip.Addr
	srcStr  string
	started time.Time
	// mfa is the kind of verification code the client presented at
	// authentication, "" if none was asked.
	mfa string
	// viaDirectory marks a directory user (password or directory key):
	// its groups are read from the directory on every decision (cached
	// per cache_ttl), and key is nil after a password.
	viaDirectory bool
	// viaSSO marks a single sign-on login: key is nil, and the identity
	// is checked by name.
	viaSSO bool

	// openSessions and openChannels count channels being served.
	openSessions, openChannels atomic.Int32
	// denials counts audited refusals; past maxAuditedDenials a connection
	// writes no more, so a client cannot flood the audit trail.
	denials atomic.Int32
	// noMoreSessionsSet is set once the client sent
	// no-more-sessions@openssh.com: later session channels are refused.
	noMoreSessionsSet atomic.Bool

	// upInbox hands the upstream's unasked traffic to the connection's loop;
	// buffered for the one dial a connection makes.
	upInbox chan upstreamInbox
	// hostInbox hands the connection's loop the bridge of a session whose
	// request loop it serves (hostBridge); one deep, and empty whenever
	// hosting is false.
	hostInbox chan *hostedBridge

	// decideMu serializes decisions, so that two first requests arriving
	// together cannot fix different target users; acquired before mu.
	decideMu sync.Mutex
	// dialMu serializes dialing the upstream; it is acquired before mu.
	dialMu sync.Mutex
	// mu guards the fields below it.
	mu         sync.Mutex
	targetUser string   // fixed by the first allowed request
	upstream   ssh.Conn // dialed once, shared by channels
	dialErr    error    // a failed dial is not retried on the same connection
	grants     map[*grant]struct{}
	nextChan   int
	ended      bool
	// hosting says that the connection's loop serves (or is handed) a
	// session's bridge; cleared when that session's loop ends.
	hosting bool
	// ahead is the connection to the target made while the client
	// authenticated, waiting for the first authorized request's
	// credential; the dial takes it (takeAhead), or the end closes it.
	ahead *upstream.Pending
	// upStalled says upWrite closed the upstream: the target stopped
	// reading (its sessions' end events say so).
	upStalled atomic.Bool
}

// grant is one live authorized request: a session or a tunnel. Recheck
// decides it again on every resource change.
type grant struct {
	id      string
	action  string
	command string
	dest    string // a tunnel's HOST:PORT
	started time.Time
	// notify tells the client why its session is ending (stderr of a
	// session channel); nil for tunnels.
	notify func(msg string)
	// Set by setEnd once the session runs (guarded by conn.mu):
	// targetUser it runs as, and end, which ends it with a reason.
	targetUser string
	end        func(reason string)
	// paths are a file-transfer session's path rules, replaced when a
	// policy change re-decides the session (recheck).
	paths atomic.Pointer[pathrule.Rules]
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// handle runs one connection from accept to close. entry is its place in
// the pre-authentication pool, given back once it logs in or ends.
//
// The handshake, authentication and the login's audit event (a store
// write) run on a goroutine of their own (onOwnStack) and this one only
// serves the connection afterwards: a goroutine's stack keeps the size of
// the deepest call it made until collections shrink it, and this one
// lives as long as the connection.
func (s *Server) handle(ctx context.Context, nc net.Conn, entry *preAuthEntry) {
	defer nc.Close()
	defer s.preAuth.release(entry)
	var (
		c         *conn
		chans     <-chan ssh.NewChannel
		reqs      <-chan *ssh.Request
		unaudited bool
	)
	onOwnStack(func() { c, chans, reqs, unaudited = s.login(ctx, nc, entry) })
	if c == nil {
		return
	}
	defer c.cancel()
	defer s.untrack(c)
	if unaudited {
		// A client that opens no channel (ssh -N) is not told; it is
		// dropped all the same, soon.
		drop := time.AfterFunc(unauditedGrace, func() { c.sshConn.Close() })
		defer drop.Stop()
	}
	c.serve(chans, reqs, unaudited)
}

// login runs a connection's handshake and authentication and returns it
// logged in, tracked and audited, or nil (then nothing is left to undo).
// unaudited says that its login event could be neither stored nor
// spooled.
func (s *Server) login(ctx context.Context, nc net.Conn, entry *preAuthEntry) (c *conn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, unaudited bool) {
	accepted := time.Now()
	// OpenSSH clients leave Nagle's algorithm on until a session starts,
	// so a small packet written right after another (the service request
	// after NEWKEYS) waits for our acknowledgement of the first, which
	// Linux delays by up to 40 ms: acknowledge the setup's reads at once.
	nc = &progressConn{Conn: quickack.Wrap(nc, quickack.SetupReads), e: entry}

	src := authlimit.AddrOf(nc.RemoteAddr())
	srcStr := nc.RemoteAddr().String()
	// The id is chosen before authentication so that second-factor events
	// carry the session id of the login they belong to.
	connID := newID()
	var (
		login     loginstr.Login
		loginErr  error
		announced bool
		lastErr   error
		// ahead is the connection made to the target as the client
		// authenticates (dialAhead); handed to the conn at login, closed
		// if the login does not go through.
		ahead *upstream.Pending
		// refunds give back the failures charged, per SSH user name: at
		// login, those of the name that logged in (a client may change
		// the name between attempts, and must not buy guesses against
		// another user by logging in as itself afterwards).
		refunds = map[string][]func(){}
	)
	// authStarted gives a client that asked to authenticate the rest of
	// AuthTimeout; until then AuthStartTimeout bounds it. Every callback
	// runs in this goroutine, so no lock.
	authStarted := func() {
		if entry.progress.Load() < progressAuthing {
			entry.advance(progressAuthing)
			_ = nc.SetDeadline(accepted.Add(s.cfg.AuthTimeout))
		}
	}
	cfg := serverConfig()
	cfg.AddHostKey(s.cfg.HostKey)
	cfg.MaxAuthTries = 6
	// parse reads the login string, once per attempt: every method's
	// callback starts with it.
	parse := func(meta ssh.ConnMetadata) error {
		authStarted()
		login, loginErr = loginstr.Parse(meta.User())
		if loginErr != nil {
			if !announced {
				announced = true
				s.cfg.Metrics.Denied(metrics.DenyLoginString)
				s.writeAudit(ctx, store.AuditEvent{Type: audit.LoginMalformed, Outcome: audit.Deny, Source: srcStr,
					Message: loginErr.Error()})
			}
			return &ssh.BannerError{Err: loginErr,
				Message: fmt.Sprintf("portcullis: %v; %s\r\n", loginErr, loginstr.Usage)}
		}
		return nil
	}
	var dir *directoryAuth
	var sso *ssoAuth
	if s.cfg.SSO != nil {
		sso = &ssoAuth{srv: s, ctx: ctx, connID: connID, src: src, srcStr: srcStr,
			deadline: time.Now().Add(s.cfg.AuthTimeout),
			parse: func(meta ssh.ConnMetadata) (string, string, string, error) {
				err := parse(meta)
				return login.User, login.Target, login.Account, err
			}}
	}
	if s.cfg.Directory != nil {
		dir = &directoryAuth{srv: s, ctx: ctx, connID: connID, src: src, srcStr: srcStr,
			parse: func(meta ssh.ConnMetadata) (string, string, string, error) {
				err := parse(meta)
				return login.User, login.Target, login.Account, err
			}}
		// Both run in this connection's goroutine, under AuthTimeout,
		// never in the accept loop; the directory's own timeout bounds
		// each request to it.
		cfg.PasswordCallback = func(meta ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if err := s.available(); err != nil {
				return nil, err
			}
			return dir.password(meta, pw, "password")
		}
		cfg.KeyboardInteractiveCallback = func(meta ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			if err := s.available(); err != nil {
				return nil, err
			}
			return dir.keyboardInteractive(meta, client)
		}
	}
	if sso != nil {
		// A user linked to a provider account signs in with the browser;
		// anyone else keeps the directory password, if there is one.
		dirKI := cfg.KeyboardInteractiveCallback
		cfg.KeyboardInteractiveCallback = func(meta ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			if err := parse(meta); err != nil {
				return nil, err
			}
			if err := s.available(); err != nil {
				return nil, err
			}
			linked, err := sso.applies(login.User)
			if err != nil {
				s.cfg.Log.Warn("single sign-on unavailable", "user", login.User, "err", err)
				return nil, err
			}
			if linked {
				return sso.keyboardInteractive(meta, client)
			}
			if dirKI != nil {
				return dirKI(meta, client)
			}
			return nil, fmt.Errorf("%q is not linked to a single sign-on account", login.User)
		}
	}
	cfg.PublicKeyCallback = func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if err := parse(meta); err != nil {
			return nil, err
		}
		snap := s.cfg.Snapshot()
		id, ok := snap.Authenticate(login.User, key)
		if !ok && dir != nil {
			// Not a key the gateway holds: maybe one on the user's
			// directory entry.
			if err := s.available(); err != nil {
				return nil, err
			}
			return dir.publicKey(login.User, login.Target, login.Account, key)
		}
		if !ok {
			return nil, fmt.Errorf("key %s is not registered for %q", ssh.FingerprintSHA256(key), login.User)
		}
		if s.cfg.Available != nil {
			if err := s.cfg.Available(); err != nil {
				return nil, &ssh.BannerError{Err: err,
					Message: fmt.Sprintf("portcullis: new logins are refused for now: %v\r\n", err)}
			}
		}
		ext := map[string]string{
			extIdentity: id.Name,
			extKeyFP:    ssh.FingerprintSHA256(key),
			extKey:      string(key.Marshal()),
		}
		sf := snap.Engine.SecondFactor(policy.Request{Kind: id.Kind, Subject: id.Name, Target: login.Target,
			TargetUser: login.Account, Source: src})
		if !sf.Required {
			return &ssh.Permissions{Extensions: ext}, nil
		}
		if id.Kind != policy.SubjectUser {
			// Refused here rather than at the prompt: scripts run with
			// BatchMode and would never see why.
			return nil, &ssh.BannerError{Err: fmt.Errorf("service account %s asked a verification code (%s)", id.Name, sf.Reason),
				Message: fmt.Sprintf("portcullis: %s requires a verification code, which a service account cannot give: "+
					"grant it with an autologin policy from the script's networks\r\n", sf.Reason)}
		}
		// The key is only the first factor: the code is asked next, by
		// keyboard-interactive. x/crypto applies Next only once this key
		// is verified, so the closure's identity is the verified key's.
		return nil, &ssh.PartialSuccessError{Next: ssh.ServerAuthCallbacks{
			KeyboardInteractiveCallback: s.askCode(ctx, secondFactorAsk{ident: id, ext: ext, reason: sf.Reason,
				src: src, srcStr: srcStr, sessionID: connID}),
		}}
	}
	cfg.AuthLogCallback = func(meta ssh.ConnMetadata, method string, err error) {
		// The "none" probe reaches no other callback.
		authStarted()
		// A key that needs a code next is not a failure.
		var partial *ssh.PartialSuccessError
		if err == nil && method == "publickey" && ahead == nil {
			// The client proved it holds a key registered to the user
			// (a second factor would be a partial success, not nil):
			// start the connection to the target now, so that its TCP,
			// key exchange and host-key check overlap the client's
			// channel open and first request. x/crypto may answer a
			// signature from an earlier query's result, so the login
			// string is this request's, not the last one parsed.
			if l, perr := loginstr.Parse(meta.User()); perr == nil {
				ahead = s.dialAhead(ctx, s.cfg.Snapshot(), l, src)
			}
		}
		if err != nil && method != "none" && !errors.As(err, &partial) {
			lastErr = err
			if r := s.noteFailure(src); r != nil {
				refunds[meta.User()] = append(refunds[meta.User()], r)
			}
		}
	}

	// A client that does not log in leaves nothing behind at the target.
	defer func() {
		if ahead != nil {
			ahead.Close()
		}
	}()
	_ = nc.SetDeadline(accepted.Add(s.cfg.AuthStartTimeout))
	sshConn, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		chans, reqs = nil, nil
		if lastErr != nil {
			s.cfg.Metrics.Login(false)
		}
		if lastErr != nil && loginErr == nil {
			s.writeAudit(ctx, store.AuditEvent{Type: audit.LoginFailure, Outcome: audit.Deny, Source: srcStr,
				User: login.User, Target: login.Target, Message: "authentication failed: " + lastErr.Error()})
		} else {
			s.cfg.Log.Debug("handshake ended", "source", srcStr, "err", err)
		}
		return nil, nil, nil, false
	}
	_ = nc.SetDeadline(time.Time{})
	s.preAuth.release(entry)
	// Logged in: the keys tried before the right one were no guesses.
	for _, r := range refunds[sshConn.User()] {
		r()
	}

	// The snapshot may have changed since the callback ran: check the
	// verified key (or, for a directory user, the identity) against the
	// current one.
	ext := sshConn.Permissions.Extensions
	viaDirectory := ext[extDirectory] != ""
	viaSSO := ext[extSSO] != ""
	var verified ssh.PublicKey
	if k := ext[extKey]; k != "" || !(viaDirectory || viaSSO) {
		if verified, err = ssh.ParsePublicKey([]byte(k)); err != nil {
			sshConn.Close()
			return nil, nil, nil, false
		}
	}
	ident, ok := s.identify(s.cfg.Snapshot(), ext[extIdentity], verified, viaDirectory || viaSSO)
	if !ok {
		sshConn.Close()
		return nil, nil, nil, false
	}
	cctx, cancel := context.WithCancel(ctx)
	c = &conn{
		srv: s, id: connID, ctx: cctx, cancel: cancel,
		sshConn: sshConn, ident: ident, key: verified, login: login,
		source: src, srcStr: srcStr, started: time.Now(), mfa: sshConn.Permissions.Extensions[extMFA], viaDirectory: viaDirectory,
		viaSSO: viaSSO, grants: map[*grant]struct{}{}, upInbox: make(chan upstreamInbox, 1),
		hostInbox: make(chan *hostedBridge, 1),
		ahead:     ahead,
	}
	ahead = nil // the conn closes it from now on
	if !s.track(c) {
		cancel()
		c.closeAhead()
		sshConn.Close()
		return nil, nil, nil, false
	}

	s.cfg.Metrics.Login(true)
	s.bursts.login()
	how := "key " + ext[extKeyFP]
	var detail map[string]any
	switch {
	case viaDirectory:
		how = ext[extDirectory]
	case viaSSO:
		how = ext[extSSO]
		detail = map[string]any{"via": "sso"}
	}
	if c.mfa != "" {
		how += " and a " + c.mfa + " code"
	}
	// Fail closed only when the login cannot be kept at all: Write
	// returns an error when neither the store nor the spool took the
	// event (a store that refuses writes alone sends it to the spool).
	unaudited = s.writeAudit(ctx, store.AuditEvent{Type: audit.LoginSuccess, Outcome: audit.Success, Source: srcStr,
		User: ident.Name, Target: login.Target, Account: login.Account, SessionID: c.id,
		Message: fmt.Sprintf("%s authenticated with %s", ident.Name, how), Detail: detail}) != nil
	return c, chans, reqs, unaudited
}

// serve runs a logged-in connection until its client is gone: one loop
// serves both global requests and channel opens (every goroutine costs
// memory on each of possibly thousands of idle connections); each channel
// gets a goroutine. The loop also serves the request loop of one running
// session (hostBridge), whose goroutine then ends: an idle connection
// with one session parks one goroutine fewer. unaudited refuses every
// channel (the login event could not be kept).
//
// The loop itself handles only the hosted session's events that write
// nothing (a barrier with no request before it, a held exit status);
// any other goes to a goroutine of the session's (handBack, unhost),
// which gives it back once idle: a write to a target whose host stopped
// reading waits until the upstream is closed, which this loop does on
// the hang-up, so a blocked session never holds up the connection.
func (c *conn) serve(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, unaudited bool) {
	sshConn := c.sshConn
	var chWG sync.WaitGroup
	var upChans <-chan ssh.NewChannel
	var upReqs <-chan *ssh.Request
	// hosted is the session whose request loop this loop serves, if any;
	// its channels are nil in the select otherwise.
	var hosted *hostedBridge
	for chans != nil {
		var (
			hostInbox = c.hostInbox
			hAbort    <-chan struct{}
			hCreqs    <-chan *ssh.Request
			hUreqs    <-chan *ssh.Request
			hBarrier  chan chan struct{}
		)
		if hosted != nil {
			hostInbox = nil
			hAbort, hCreqs, hUreqs, hBarrier = hosted.b.abort, hosted.b.creqs, hosted.b.ureqs, hosted.b.barrier
		}
		var nch ssh.NewChannel
		select {
		case hosted = <-hostInbox:
			continue
		case <-hAbort:
			c.unhost(hosted, hosted.b.aborted)
			hosted = nil
			continue
		case req, ok := <-hCreqs:
			// Forwarding writes to the target (and answers the client):
			// a goroutine of the session's does it (handBack).
			h := hosted
			c.handBack(h, func() { h.b.clientRequest(req, ok) })
			hosted = nil
			continue
		case done := <-hBarrier:
			if len(hCreqs) == 0 {
				// Nothing came before the data: it may go at once, and
				// nothing is written here.
				close(done)
				continue
			}
			h := hosted
			c.handBack(h, func() { h.b.flush(done) })
			hosted = nil
			continue
		case req, ok := <-hUreqs:
			switch {
			case !ok:
				c.unhost(hosted, hosted.b.finish)
				hosted = nil
			case req.Type == "exit-status" || req.Type == "exit-signal":
				// Held for the end: nothing is written now.
				hosted.b.targetRequest(req, ok)
			default:
				h := hosted
				c.handBack(h, func() { h.b.targetRequest(req, ok) })
				hosted = nil
			}
			continue
		case in := <-c.upInbox:
			upChans, upReqs = in.chans, in.reqs
			continue
		case nch, ok := <-upChans:
			if !ok {
				upChans = nil
			} else {
				// The refusal is a write to the target: bounded
				// (upWrite), so a frozen target cannot hold this loop.
				c.upWrite(func() { refuseUpstreamChannel(nch) })
			}
			continue
		case req, ok := <-upReqs:
			if !ok {
				upReqs = nil
			} else {
				c.upWrite(func() { refuseUpstreamRequest(req) })
			}
			continue
		case req, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			c.handleGlobalRequest(req)
			continue
		case ch, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			nch = ch
		}
		if unaudited {
			// The first channel is where the client can be told why.
			_ = nch.Reject(ssh.ResourceShortage, "portcullis: the gateway cannot write its audit trail; try again in a moment")
			sshConn.Close()
			continue
		}
		// Like OpenSSH's MaxSessions: a client cannot open channels (and
		// goroutines) without bound.
		if open := c.openChannels.Load(); (nch.ChannelType() == "session" && c.openSessions.Load() >= maxSessions) || open >= maxChannels {
			c.deny(metrics.DenyLimit, nch.ChannelType(), "", "too many open channels on this connection")
			_ = nch.Reject(ssh.ResourceShortage, fmt.Sprintf("portcullis: too many open channels on this connection (sessions %d, channels %d)", maxSessions, maxChannels))
			continue
		}
		h, ok := channelHandlers[nch.ChannelType()]
		switch {
		case !ok:
			c.deny(metrics.DenyUnsupported, nch.ChannelType(), "", fmt.Sprintf("channel type %s is not supported by the gateway", nch.ChannelType()))
			_ = nch.Reject(ssh.Prohibited, "portcullis: "+nch.ChannelType()+" is not allowed through the gateway")
		case h.session && c.noMoreSessionsSet.Load():
			c.deny(metrics.DenyUnsupported, nch.ChannelType(), "", "session opened after the client sent no-more-sessions")
			_ = nch.Reject(ssh.Prohibited, "portcullis: no more sessions on this connection")
		default:
			chWG.Add(1)
			c.openChannels.Add(1)
			if h.session {
				c.openSessions.Add(1)
			}
			done := func() {
				if h.session {
					c.openSessions.Add(-1)
				}
				c.openChannels.Add(-1)
				chWG.Done()
			}
			go h.serve(c, nch, done)
		}
	}
	// The client is gone: end every session's upstream side so their
	// goroutines write their end events, then drop the upstream. Marking
	// the connection ended first makes a dial still in flight close what
	// it gets instead of keeping it, and a session hand its bridge to
	// this loop no more (hostBridge).
	c.cancel()
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	c.closeUpstream()
	if hosted == nil {
		// A session may have handed its bridge over as the loop ended.
		select {
		case hosted = <-c.hostInbox:
		default:
		}
	}
	if hosted != nil {
		// Its client and target are gone or going: the rest of its loop
		// runs here, as it would have on its own goroutine.
		hosted.end(hosted.b.run())
	}
	chWG.Wait()
	// After the channels: a dial still in flight may have taken it.
	c.closeAhead()
}

// hostedBridge is a running session's bridge handed to the connection's
// loop (hostBridge), and what ends the session once its loop is over.
type hostedBridge struct {
	b *bridge
	// end is given the bridge's result: it writes the session's end
	// event and releases its channel.
	end func(sessionResult)
}

// hostBridge hands h to the connection's loop, which then serves its
// request loop, unless the loop serves another session's already or has
// ended: false then, and the caller runs the bridge itself. One session
// per connection at most is hosted: the loop must not be held up by many,
// and a connection with several sessions is not the one to save on.
func (c *conn) hostBridge(h *hostedBridge) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended || c.hosting || c.hostInbox == nil {
		return false
	}
	c.hosting = true
	c.hostInbox <- h // empty while hosting was false: never blocks
	return true
}

// handBack gives the hosted session's loop back to a goroutine of its
// own for an event whose handling writes to its target or its client
// (first): a write to a target whose host stopped reading waits until the
// upstream connection is closed, and closing it on the client's hang-up
// is this loop's job (serve's end), so the loop must never wait there
// itself. The goroutine handles what else is ready, then offers the
// session to the loop again (hostBridge), or runs it to its end if the
// loop hosts another by then or has ended.
func (c *conn) handBack(h *hostedBridge, first func()) {
	c.mu.Lock()
	c.hosting = false
	c.mu.Unlock()
	go func() {
		first()
		if res, over := h.b.drain(); over {
			h.end(res)
			return
		}
		if !c.hostBridge(h) {
			h.end(h.b.run())
		}
	}()
}

// unhost ends the hosted session whose loop is over: last runs the rest
// of its bridge (finish may wait for a client to read, until abort),
// then its end, on a goroutine of their own, which chWG (the channel's
// done, in end) accounts for. The loop may host another session after.
func (c *conn) unhost(h *hostedBridge, last func() sessionResult) {
	c.mu.Lock()
	c.hosting = false
	c.mu.Unlock()
	go func() { h.end(last()) }()
}

// identify checks that the identity a connection authenticated as still
// holds: its key is still registered, or, byName (a directory user or a
// single sign-on), the user still exists (its directory key, password or
// browser sign-in was checked at sign-in, and directory groups are
// re-read per request).
func (s *Server) identify(snap *inventory.Snapshot, name string, key ssh.PublicKey, byName bool) (inventory.Identity, bool) {
	if byName {
		id, ok := snap.Identity(name)
		return id, ok && id.Kind == policy.SubjectUser
	}
	return snap.Authenticate(name, key)
}

// available asks Config.Available, if set, whether logins are accepted.
func (s *Server) available() error {
	if s.cfg.Available == nil {
		return nil
	}
	if err := s.cfg.Available(); err != nil {
		return &ssh.BannerError{Err: err,
			Message: fmt.Sprintf("portcullis: new logins are refused for now: %v\r\n", err)}
	}
	return nil
}

func (s *Server) writeAudit(ctx context.Context, ev store.AuditEvent) error {
	return s.cfg.Audit.Write(ctx, ev)
}

// audit writes an event stamped with this connection's who and where.
func (c *conn) audit(ev store.AuditEvent) error {
	ev.User, ev.Source, ev.Target = c.ident.Name, c.srcStr, c.login.Target
	if ev.SessionID == "" {
		ev.SessionID = c.id
	}
	if ev.Account == "" {
		c.mu.Lock()
		ev.Account = c.targetUser
		c.mu.Unlock()
		if ev.Account == "" {
			ev.Account = c.login.Account
		}
	}
	return c.srv.writeAudit(c.ctx, ev)
}

// unauditedGrace is how long a login whose event could be neither stored
// nor spooled waits for a channel on which to be told why, before it is
// dropped.
const unauditedGrace = 5 * time.Second

// Bounds per connection.
const (
	maxSessions       = 10
	maxChannels       = 256
	maxAuditedDenials = 50
)

// deny records a refused request; class is its metrics.Deny reason class.
func (c *conn) deny(class, action, command, reason string) {
	c.srv.cfg.Metrics.Denied(class)
	switch n := c.denials.Add(1); {
	case n == maxAuditedDenials+1:
		_ = c.audit(store.AuditEvent{Type: audit.RequestDeny, Outcome: audit.Deny,
			Message: fmt.Sprintf("more than %d refusals on this connection; further ones are not audited", maxAuditedDenials)})
		return
	case n > maxAuditedDenials:
		return
	}
	detail := map[string]any{"action": action}
	if command != "" {
		detail["command"] = command
	}
	_ = c.audit(store.AuditEvent{Type: audit.RequestDeny, Outcome: audit.Deny, Message: reason, Detail: detail})
}

// handleGlobalRequest answers a global request by globalHandlers; any
// other is refused without an audit event (keepalives are among them).
func (c *conn) handleGlobalRequest(req *ssh.Request) {
	if h, ok := globalHandlers[req.Type]; ok {
		h(c, req)
		return
	}
	if req.WantReply {
		_ = req.Reply(false, nil)
	}
}

// decide asks the engine about one request on this connection, fixing the
// target user on the first allowed request.
func (c *conn) decide(action, command string) (policy.Decision, string) {
	return c.decideTo(action, command, "")
}

// decideTo is decide for a tunnel to dest (HOST:PORT).
func (c *conn) decideTo(action, command, dest string) (policy.Decision, string) {
	c.decideMu.Lock()
	defer c.decideMu.Unlock()
	snap := c.srv.cfg.Snapshot()
	c.mu.Lock()
	tu := c.targetUser
	c.mu.Unlock()
	if tu == "" {
		tu = c.login.Account
	}
	groups, err := c.directoryGroups()
	if err != nil {
		c.srv.cfg.Log.Warn("directory groups unavailable", "user", c.ident.Name, "err", err)
		return policy.Decision{Reason: directoryDenial(err)}, ""
	}
	req := policy.Request{Kind: c.ident.Kind, Subject: c.ident.Name, Action: action, Target: c.login.Target,
		TargetUser: tu, Source: c.source, Command: command, Groups: groups, Destination: dest}
	if tu == "" {
		d := c.srv.engineDecide(snap, req)
		if !d.Allow {
			return d, ""
		}
		if len(d.TargetUsers) > 1 {
			return policy.Decision{Reason: fmt.Sprintf("several target users are allowed on %s: %s; choose one with %s~ACCOUNT~%s",
				c.login.Target, joinComma(d.TargetUsers), c.login.User, c.login.Target)}, ""
		}
		req.TargetUser = d.TargetUsers[0]
	}
	d := c.srv.engineDecide(snap, req)
	if d.Allow && c.codeMissing(d) {
		return policy.Decision{Reason: fmt.Sprintf("access denied: policy %s requires a verification code; reconnect to be asked one", d.Policy)}, ""
	}
	if d.Allow {
		c.mu.Lock()
		if c.targetUser == "" {
			c.targetUser = req.TargetUser
		}
		c.mu.Unlock()
	}
	return d, req.TargetUser
}

// engineDecide asks snap's engine about req and times the answer for the
// metrics; without metrics it does not read the clock.
func (s *Server) engineDecide(snap *inventory.Snapshot, req policy.Request) policy.Decision {
	if s.cfg.Metrics == nil {
		return snap.Engine.Decide(req)
	}
	start := time.Now()
	d := snap.Engine.Decide(req)
	s.cfg.Metrics.PolicyDecision(time.Since(start))
	return d
}

func joinComma(list []string) string {
	out := ""
	for i, s := range list {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

// addGrant registers a live request for Recheck; it fails if the
// connection is already ending.
func (c *conn) addGrant(g *grant) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return false
	}
	c.nextChan++
	g.id = fmt.Sprintf("%s-%d", c.id, c.nextChan)
	g.started = time.Now()
	c.grants[g] = struct{}{}
	return true
}

func (c *conn) removeGrant(g *grant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.grants, g)
}

// recheck decides every live grant again; the first one denied ends the
// whole connection, since its identity or access changed under it.
func (c *conn) recheck(snap *inventory.Snapshot) {
	if _, ok := c.srv.identify(snap, c.ident.Name, c.key, c.viaDirectory || c.viaSSO); !ok {
		c.terminate("access revoked: your identity or key was removed", audit.SessionRevoke)
		return
	}
	groups, err := c.directoryGroups()
	if err != nil {
		c.terminate(strings.Replace(directoryDenial(err), "access denied", "access revoked", 1), audit.SessionRevoke)
		return
	}
	if c.mfa == "" && snap.Engine.SecondFactor(policy.Request{Kind: c.ident.Kind, Subject: c.ident.Name,
		Target: c.login.Target, TargetUser: c.login.Account, Source: c.source, Groups: groups}).Required {
		c.terminate("access revoked: a verification code is now required; reconnect to be asked one", audit.SessionRevoke)
		return
	}
	c.mu.Lock()
	tu := c.targetUser
	grants := make([]*grant, 0, len(c.grants))
	for g := range c.grants {
		grants = append(grants, g)
	}
	c.mu.Unlock()
	for _, g := range grants {
		d := c.srv.engineDecide(snap, policy.Request{Kind: c.ident.Kind, Subject: c.ident.Name, Action: g.action,
			Target: c.login.Target, TargetUser: tu, Source: c.source, Command: g.command, Groups: groups, Destination: g.dest})
		if !d.Allow {
			c.terminate("access revoked: "+d.Reason, audit.SessionRevoke)
			return
		}
		if c.codeMissing(d) {
			c.terminate(fmt.Sprintf("access revoked: policy %s now requires a verification code; reconnect to be asked one", d.Policy), audit.SessionRevoke)
			return
		}
		if d.Paths != nil {
			g.paths.Store(d.Paths)
		}
	}
}

// terminate tells every session why and closes the connection. It does
// not wait for a client that stopped reading: the notices get two seconds
// in the background, then the connection is closed, which also ends any
// write still blocked.
func (c *conn) terminate(reason, eventType string) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	var notify []func(string)
	var ids []string
	for g := range c.grants {
		if g.notify != nil {
			notify = append(notify, g.notify)
		}
		ids = append(ids, g.id)
	}
	c.mu.Unlock()
	// One event per session, under the id its session.start and
	// session.end carry, so that a session's trail reads whole; a
	// connection with no session gets one under its login's id.
	if len(ids) == 0 {
		ids = append(ids, c.id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		_ = c.audit(store.AuditEvent{Type: eventType, Outcome: audit.Info, SessionID: id, Message: reason})
	}
	c.cancel()
	go func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, n := range notify {
				n("portcullis: session ended: " + reason)
			}
		}()
		t := time.NewTimer(2 * time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
		c.closeUpstream()
		c.sshConn.Close()
	}()
}

// tell writes msg to every session of the connection, each line in its
// own goroutine (a client that stopped reading blocks only its own); they
// end when written or when the connection closes. wg counts them.
func (c *conn) tell(msg string, wg *sync.WaitGroup) {
	c.mu.Lock()
	var notify []func(string)
	for g := range c.grants {
		if g.notify != nil {
			notify = append(notify, g.notify)
		}
	}
	c.mu.Unlock()
	for _, n := range notify {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n(msg)
		}()
	}
}

// takeAhead returns the connection made ahead, if any, and forgets it:
// whoever takes it uses or closes it.
func (c *conn) takeAhead() *upstream.Pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.ahead
	c.ahead = nil
	return p
}

// closeAhead closes the connection made ahead if no request used it.
func (c *conn) closeAhead() {
	if p := c.takeAhead(); p != nil {
		p.Close()
	}
}

// upstreamStall is how long a write to the target outside the data path
// (a forwarded request, a reply, a kill's TERM) may wait, in nanoseconds;
// tests shorten it.
var upstreamStall atomic.Int64

func init() { upstreamStall.Store(int64(30 * time.Second)) }

// errUpstreamStalled is the end reason of the sessions on a target that
// stopped reading.
var errUpstreamStalled = errors.New("the target stopped reading (its host may have frozen): the gateway closed the connection to it")

// upWrite runs f, a write to the target's connection outside the data
// path. Such a write waits for the connection's write lock, which a data
// pump holds while the target does not read; whoever calls it (the
// session's request loop, a kill, a limit) must not wait for good: the
// client's requests would stop the client connection's read loop, so its
// hang-up would never be seen. A target that takes nothing for
// upstreamStall while the gateway has something for it is taken for dead:
// its connection is closed, which ends f, the pumps and its sessions. A
// timer, not a goroutine, so an idle session keeps none.
func (c *conn) upWrite(f func()) {
	t := time.AfterFunc(time.Duration(upstreamStall.Load()), c.upstreamStalled)
	f()
	t.Stop()
}

// upstreamStalled closes the connection to a target that stopped reading.
func (c *conn) upstreamStalled() {
	c.upStalled.Store(true)
	c.srv.cfg.Log.Warn("closing the connection to a target that stopped reading",
		"target", c.login.Target, "waited", time.Duration(upstreamStall.Load()))
	c.closeUpstream()
}

func (c *conn) closeUpstream() {
	c.mu.Lock()
	up := c.upstream
	c.mu.Unlock()
	if up != nil {
		up.Close()
	}
}

// errTargetDown is shown when the target cannot be reached or logged in to.
var errTargetDown = errors.New("target unreachable")
