package pgproxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/authlimit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/loginstr"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
)

// SQLSTATE codes the gateway answers with.
const (
	stateProtocolViolation   = "08P01"
	stateInvalidAuth         = "28000"
	stateInvalidPassword     = "28P01"
	stateInsufficientPriv    = "42501"
	stateDuplicatePrepared   = "42P05"
	stateProgramLimit        = "54000"
	stateTooManyConnections  = "53300"
	stateAdminShutdown       = "57P01"
	stateCannotConnect       = "08001"
	stateInvalidCatalog      = "3D000"
	stateFeatureNotSupported = "0A000"
)

// session is one authenticated client connection and its database
// connection. Fields set before register are read-only afterwards.
type session struct {
	srv      *Server
	id       string
	client   net.Conn
	src      string
	srcAddr  netip.Addr
	ident    inventory.Identity
	login    loginstr.Login
	database string
	// targetUser is the account the gateway logs in as.
	targetUser string
	started    time.Time
	mfa        bool // a verification code was presented
	// pid and secret are the gateway's cancel key for this session;
	// upPID and upSecret the database's, never shown to the client.
	pid      uint32
	secret   []byte
	upPID    uint32
	upSecret []byte
	upstream net.Conn
	rec      *recording.Recorder
	// in reads the client from the password message on.
	in *bufio.Reader

	// rules are the statement rules of the current grant; a recheck
	// replaces them.
	rules atomic.Pointer[policy.StatementRules]

	endOnce sync.Once
	endMsg  atomic.Pointer[string]

	// mu guards the client writer and the queue of statements waiting
	// for their results (relay.go).
	mu      sync.Mutex
	out     *bufio.Writer
	pending []*group

	// qmu guards auditQ, the session's audit events and statements
	// waiting for the writer (auditq.go). It is taken last: under mu
	// (resultLocked queues statements), never the other way round.
	qmu               sync.Mutex
	qcond             *sync.Cond // on qmu: the writer took the queue
	auditQ            []auditItem
	stmtCount, denied atomic.Int64
	// active is when data last went either way (unix nanoseconds), for
	// idle_timeout; over is set when the relay ended.
	active atomic.Int64
	over   atomic.Bool
}

// newID returns a random session id.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "pg-" + hex.EncodeToString(b[:])
}

func randomPID() uint32 {
	var b [4]byte
	for {
		_, _ = rand.Read(b[:])
		// Zero and the top bit are avoided: some clients print the pid
		// as a signed number.
		if v := binary.BigEndian.Uint32(b[:]) &^ (1 << 31); v != 0 {
			return v
		}
	}
}

// handle runs one connection from accept to close.
func (s *Server) handle(ctx context.Context, nc net.Conn, src netip.Addr) {
	defer nc.Close()
	preAuth := true
	defer func() {
		if preAuth {
			s.authenticated(src)
		}
	}()
	_ = nc.SetDeadline(time.Now().Add(s.cfg.StartupTimeout))
	srcStr := nc.RemoteAddr().String()
	conn, startup, err := s.negotiate(nc, srcStr)
	if err != nil {
		if !errors.Is(err, errHandled) {
			s.cfg.Log.Debug("postgres startup failed", "source", srcStr, "err", err)
		}
		return
	}
	defer conn.Close()
	sess := &session{srv: s, id: newID(), client: conn, src: srcStr, srcAddr: src, started: time.Now()}
	if !s.login(ctx, sess, startup) {
		return
	}
	s.authenticated(src)
	preAuth = false
	_ = nc.SetDeadline(time.Time{})
	sess.run(ctx)
}

// errHandled marks a startup that ended as the protocol says (a cancel
// request, a refusal already sent): nothing more to log.
var errHandled = errors.New("handled")

// negotiate runs the startup phase up to the StartupMessage: TLS by
// SSLRequest or direct TLS, GSSENCRequest refused, cancel requests
// handled. It returns the TLS connection and the startup packet.
func (s *Server) negotiate(nc net.Conn, src string) (net.Conn, startupPacket, error) {
	var first [1]byte
	if _, err := io.ReadFull(nc, first[:]); err != nil {
		return nil, startupPacket{}, fmt.Errorf("read: %w", err)
	}
	var conn net.Conn = &prefixConn{Conn: nc, prefix: first[:]}
	if first[0] == 0x16 {
		// A TLS record: PostgreSQL 17 direct TLS, which must say ALPN
		// "postgresql" (as the server requires, against cross-protocol
		// attacks).
		tc := tls.Server(conn, s.tls)
		if err := tc.Handshake(); err != nil {
			return nil, startupPacket{}, fmt.Errorf("direct TLS handshake: %w", err)
		}
		if tc.ConnectionState().NegotiatedProtocol != alpnPostgres {
			return nil, startupPacket{}, errors.New("direct TLS without ALPN postgresql")
		}
		conn = tc
	}
	_, isTLS := conn.(*tls.Conn)
	for range 4 {
		p, err := readStartup(conn)
		if err != nil {
			return nil, p, err
		}
		switch {
		case p.code == codeSSLRequest && !isTLS:
			if _, err := nc.Write([]byte{'S'}); err != nil {
				return nil, p, err
			}
			tc := tls.Server(nc, s.tls)
			if err := tc.Handshake(); err != nil {
				return nil, p, fmt.Errorf("TLS handshake: %w", err)
			}
			conn, isTLS = tc, true
		case p.code == codeGSSENCRequest && !isTLS:
			if _, err := nc.Write([]byte{'N'}); err != nil {
				return nil, p, err
			}
		case p.code == codeCancelRequest:
			s.cancelRequest(p, src, authlimit.AddrOf(nc.RemoteAddr()))
			return nil, p, errHandled
		case p.code>>16 == 3 && !isTLS:
			s.refuse(conn, stateProtocolViolation, "portcullis requires TLS: connect with sslmode=require (or verify-full)")
			s.audit(store.AuditEvent{Type: audit.LoginFailure, Outcome: audit.Deny, Source: src,
				Message: "postgres startup without TLS refused", Detail: map[string]any{"front": "postgres"}})
			return nil, p, errHandled
		case p.code>>16 == 3:
			return conn, p, nil
		default:
			s.refuse(conn, stateProtocolViolation, "unsupported startup request")
			return nil, p, fmt.Errorf("unexpected startup code %d", p.code)
		}
	}
	return nil, startupPacket{}, errors.New("too many startup requests")
}

// prefixConn gives back bytes read ahead before the connection's own.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// refuse sends a FATAL ErrorResponse.
func (s *Server) refuse(w io.Writer, code, msg string) {
	_, _ = w.Write(encode(nil, errorResponse(code, msg)))
}

func (s *Server) audit(ev store.AuditEvent) {
	if ev.Detail == nil {
		ev.Detail = map[string]any{}
	}
	ev.Detail["front"] = "postgres"
	if err := s.cfg.Audit.Write(context.Background(), ev); err != nil {
		s.cfg.Log.Error("audit", "type", ev.Type, "err", err)
	}
}

// login authenticates and authorizes the session and connects upstream;
// on false the client has been told why.
func (s *Server) login(ctx context.Context, sess *session, p startupPacket) bool {
	conn := sess.client
	w := bufio.NewWriter(conn)
	fail := func(code, msg string) bool {
		_, _ = w.Write(encode(nil, errorResponse(code, msg)))
		_ = w.Flush()
		return false
	}
	// Protocol versions: 3.0 and 3.2; a later minor version, or protocol
	// extensions (_pq_.*), are answered with what the gateway speaks.
	version := p.code
	var unknownOpts []string
	for _, name := range p.order {
		if strings.HasPrefix(name, "_pq_.") {
			unknownOpts = append(unknownOpts, name)
		}
	}
	if version > protocol32 || len(unknownOpts) > 0 || version == protocol30+1 {
		if version > protocol32 {
			version = protocol32
		}
		if version == protocol30+1 {
			version = protocol30
		}
		_, _ = w.Write(encode(nil, &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: version & 0xffff, UnrecognizedOptions: unknownOpts}))
	}
	secretLen := 4
	if version >= protocol32 {
		secretLen = 32
	}
	sess.secret = make([]byte, secretLen)
	_, _ = rand.Read(sess.secret)

	userStr := p.params["user"]
	sess.database = p.params["database"]
	l, err := loginstr.Parse(userStr)
	if err != nil {
		s.audit(store.AuditEvent{Type: audit.LoginMalformed, Outcome: audit.Deny, Source: sess.src, SessionID: sess.id,
			Message: "malformed postgres login string", Detail: map[string]any{"error": err.Error()}})
		return fail(stateInvalidAuth, fmt.Sprintf("portcullis: %v: use USER~TARGET or USER~ACCOUNT~TARGET as the user name, e.g. psql \"host=GATEWAY port=5433 user=alice~postgres~db1 dbname=app sslmode=require\"", err))
	}
	sess.login = l
	if s.cfg.Available != nil {
		if err := s.cfg.Available(); err != nil {
			return fail(stateCannotConnect, "portcullis: cannot sign you in now; try again later")
		}
	}
	// The password, in clear inside TLS.
	_, _ = w.Write(encode(nil, &pgproto3.AuthenticationCleartextPassword{}))
	if err := w.Flush(); err != nil {
		return false
	}
	mr := &msgReader{r: bufio.NewReaderSize(conn, 32<<10), max: 2048}
	typ, _, body, err := mr.next()
	if err != nil || typ != 'p' {
		return false
	}
	pw, _, _ := strings.Cut(string(body), "\x00")
	// Charged before the password is checked, so that attempts side by
	// side each see the others'; given back when the password was right.
	refund, allowed := s.failures.Charge(sess.srcAddr)
	if !allowed {
		s.audit(store.AuditEvent{Type: audit.LoginFailure, Outcome: audit.Deny, Source: sess.src, SessionID: sess.id,
			Target: l.Target, Message: "postgres sign-in refused: too many failed sign-ins from this source",
			Detail: map[string]any{"reason": "rate_limited"}})
		return fail(stateInvalidPassword, "portcullis: too many failed sign-ins from your address; try again later")
	}
	snap := s.cfg.Snapshot()
	auth := s.authenticate(ctx, sess, snap, pw)
	if !auth.ok {
		s.audit(store.AuditEvent{Type: audit.LoginFailure, Outcome: audit.Deny, Source: sess.src, SessionID: sess.id,
			User: auth.knownUser, Target: l.Target, Message: "postgres sign-in refused: " + auth.why,
			Detail: map[string]any{"method": auth.method}})
		if auth.tell != "" {
			return fail(stateInvalidPassword, "portcullis: "+auth.tell)
		}
		return fail(stateInvalidPassword, fmt.Sprintf("password authentication failed for user %q", userStr))
	}
	refund()
	sess.ident, sess.mfa = auth.ident, auth.mfa
	snap = s.cfg.Snapshot() // a directory user was maybe created meanwhile
	d, msg := sess.decide(snap)
	if !d.Allow {
		s.audit(store.AuditEvent{Type: audit.RequestDeny, Outcome: audit.Deny, Source: sess.src, SessionID: sess.id,
			User: sess.ident.Name, Target: l.Target, Account: sess.targetUser, Message: msg,
			Detail: map[string]any{"database": sess.database, "action": actionDatabase}})
		return fail(stateInsufficientPriv, "portcullis: "+msg)
	}
	if d.RequireMFA && !sess.mfa {
		s.audit(store.AuditEvent{Type: audit.RequestDeny, Outcome: audit.Deny, Source: sess.src, SessionID: sess.id,
			User: sess.ident.Name, Target: l.Target, Account: sess.targetUser, Policy: d.Policy,
			Message: "a verification code is required", Detail: map[string]any{"database": sess.database}})
		return fail(stateInvalidPassword, "portcullis: a verification code is required: append the 6-digit code to your password")
	}
	sess.rules.Store(d.Statements)
	// refuse audits a refusal after the decision allowed the session,
	// so that the trail says why an authorized user got nothing.
	refuse := func(code, reason, tell string) bool {
		s.audit(store.AuditEvent{Type: audit.RequestDeny, Outcome: audit.Deny, Source: sess.src, SessionID: sess.id,
			User: sess.ident.Name, Target: l.Target, Account: sess.targetUser, Policy: d.Policy, Message: reason,
			Detail: map[string]any{"database": sess.database, "action": actionDatabase}})
		return fail(code, tell)
	}
	if !s.register(sess) {
		return refuse(stateTooManyConnections, "too many database sessions on this gateway",
			"portcullis: too many database sessions on this gateway; try again later")
	}
	ok := false
	defer func() {
		if !ok {
			s.unregister(sess)
		}
	}()
	if d.Record {
		if s.cfg.Recordings == nil && !d.RecordFailOpen {
			return refuse(stateCannotConnect, "recording required and unavailable",
				"portcullis: this session must be recorded and recording is unavailable")
		}
		if s.cfg.Recordings != nil {
			rec, err := s.cfg.Recordings.Start(ctx, recording.Meta{ID: sess.id, User: sess.ident.Name, Target: l.Target,
				Account: sess.targetUser, Source: sess.src, Action: actionDatabase, Command: sess.database,
				OnFailure: func(err error) {
					if !d.RecordFailOpen {
						sess.terminate("the session's recording failed", audit.RecordingFailure)
					}
				}})
			if err != nil && !d.RecordFailOpen {
				s.cfg.Log.Error("start recording", "session", sess.id, "err", err)
				return refuse(stateCannotConnect, "recording required and failed to start: "+err.Error(),
					"portcullis: this session must be recorded and recording failed to start")
			}
			sess.rec = rec
		}
	}
	keep, dropped := filterParams(p)
	target := snap.Engine.Target(l.Target)
	hc, err := s.dialUpstream(ctx, snap, target, sess.targetUser, sess.database, keep)
	if err != nil {
		s.cfg.Log.Warn("postgres upstream", "session", sess.id, "target", l.Target, "err", err)
		s.audit(store.AuditEvent{Type: audit.TargetError, Outcome: audit.Failure, Source: sess.src, SessionID: sess.id,
			User: sess.ident.Name, Target: l.Target, Account: sess.targetUser, Message: "cannot open the database: " + upstreamMessage(err),
			Detail: map[string]any{"database": sess.database}})
		sess.closeRecording()
		return fail(upstreamState(err), "portcullis: cannot open database "+fmt.Sprintf("%q", sess.database)+" on "+l.Target+": "+upstreamMessage(err))
	}
	sess.mu.Lock()
	sess.upstream, sess.upPID, sess.upSecret = hc.Conn, hc.PID, hc.SecretKey
	sess.mu.Unlock()
	if err := s.writeAudit(store.AuditEvent{Type: audit.SessionStart, Outcome: audit.Success, Source: sess.src, SessionID: sess.id,
		User: sess.ident.Name, Target: l.Target, Account: sess.targetUser, Policy: d.Policy,
		Message: fmt.Sprintf("database session to %s as %s, database %s", l.Target, sess.targetUser, sess.database),
		Detail: map[string]any{"database": sess.database, "action": actionDatabase, "auth": auth.method,
			"protocol": fmt.Sprintf("3.%d", version&0xffff), "dropped_parameters": dropped, "recorded": sess.rec != nil}}); err != nil {
		// Fail closed: a session whose start is not on record does not run.
		hc.Conn.Close()
		sess.closeRecording()
		return fail(stateCannotConnect, "portcullis: cannot record the session start; try again later")
	}
	_, _ = w.Write(encode(nil, &pgproto3.AuthenticationOk{}))
	for _, name := range sortedKeys(hc.ParameterStatuses) {
		_, _ = w.Write(encode(nil, &pgproto3.ParameterStatus{Name: name, Value: hc.ParameterStatuses[name]}))
	}
	_, _ = w.Write(encode(nil, &pgproto3.BackendKeyData{ProcessID: sess.pid, SecretKey: sess.secret}))
	_, _ = w.Write(encode(nil, &pgproto3.ReadyForQuery{TxStatus: hc.TxStatus}))
	if err := w.Flush(); err != nil {
		hc.Conn.Close()
		sess.closeRecording()
		return false
	}
	sess.mu.Lock()
	sess.out = w
	sess.mu.Unlock()
	// The reader goes on with the relay: whatever the client sent
	// after its password is kept.
	sess.in = mr.r
	ok = true
	return true
}

func (s *Server) writeAudit(ev store.AuditEvent) error {
	if ev.Detail == nil {
		ev.Detail = map[string]any{}
	}
	ev.Detail["front"] = "postgres"
	return s.cfg.Audit.Write(context.Background(), ev)
}

// decide asks the policy for the session's grant and fixes its target
// user and database.
func (sess *session) decide(snap *inventory.Snapshot) (policy.Decision, string) {
	d, msg, tu, db := decideLogin(snap, sess.ident, sess.login, sess.srcAddr, sess.database, sess.targetUser)
	sess.targetUser, sess.database = tu, db
	return d, msg
}

// decideLogin decides a login under snap. With no target user (neither
// chosen before nor in the login string), exactly one allowed one is
// taken; with no database, the target user's name, as PostgreSQL does.
func decideLogin(snap *inventory.Snapshot, id inventory.Identity, l loginstr.Login, src netip.Addr, database, targetUser string) (d policy.Decision, msg, tu, db string) {
	req := policy.Request{Kind: id.Kind, Subject: id.Name, Target: l.Target, TargetUser: l.Account, Source: src, Database: database}
	if targetUser != "" {
		req.TargetUser = targetUser
	}
	if req.TargetUser == "" {
		d := snap.Engine.DecideProxy(req)
		switch {
		case !d.Allow:
			return d, d.Reason, "", database
		case len(d.TargetUsers) > 1:
			return policy.Decision{}, fmt.Sprintf("several target users are allowed on %s (%s): name one, as %s~USER~%s",
				l.Target, strings.Join(d.TargetUsers, ", "), l.User, l.Target), "", database
		}
		req.TargetUser = d.TargetUsers[0]
	}
	if req.Database == "" {
		req.Database = req.TargetUser
	}
	d = snap.Engine.DecideProxy(req)
	return d, d.Reason, req.TargetUser, req.Database
}

// recheck ends the session when the new resources no longer grant it. The
// target user and database were fixed at login: they are asked again as
// they are.
func (sess *session) recheck(snap *inventory.Snapshot) {
	d, msg, _, _ := decideLogin(snap, sess.ident, sess.login, sess.srcAddr, sess.database, sess.targetUser)
	if d.Allow && (!d.RequireMFA || sess.mfa) {
		sess.rules.Store(d.Statements)
		return
	}
	if d.Allow {
		msg = "a verification code is now required"
	}
	sess.terminate("access revoked: "+msg, audit.SessionRevoke)
}

// terminate ends the session with a FATAL message to the client, once.
func (sess *session) terminate(reason, eventType string) {
	sess.endOnce.Do(func() {
		sess.endMsg.Store(&reason)
		sess.srv.audit(store.AuditEvent{Type: eventType, Outcome: audit.Info, Source: sess.src, SessionID: sess.id,
			User: sess.ident.Name, Target: sess.login.Target, Account: sess.targetUser, Message: reason,
			Detail: map[string]any{"database": sess.database}})
		// The deadline before the lock: fromServer holds sess.mu while it
		// writes to the client, and a client that stopped reading would
		// otherwise keep the lock, and this session, for good.
		_ = sess.client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		sess.mu.Lock()
		if sess.out != nil {
			_, _ = sess.out.Write(encode(nil, errorResponse(stateAdminShutdown, "portcullis: "+reason)))
			_ = sess.out.Flush()
		}
		up := sess.upstream
		sess.mu.Unlock()
		sess.client.Close()
		if up != nil {
			up.Close()
		}
	})
}

func (sess *session) closeRecording() {
	if sess.rec == nil {
		return
	}
	if _, _, err := sess.rec.Close(context.Background()); err != nil {
		sess.srv.cfg.Log.Error("close recording", "session", sess.id, "err", err)
	}
}
