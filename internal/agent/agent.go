// Package agent is `portcullis agent`: the program on a target that keeps
// one outbound, mutually authenticated SSH connection to the gateway, so
// that the target needs no inbound port. The gateway opens a channel on it
// for every session to the target, and the agent serves the channel in one
// of two modes: forward, to the host's own sshd (nothing new runs as root),
// or built in, running the session itself as the target user.
//
// The protocol is in package agentproto. What the agent does, in order:
// make or read its Ed25519 identity (a 0600 file in its state directory);
// register once with a registration key, pinning the gateway's host key;
// then connect, say hello (versions first), serve channels, send
// heartbeats, and when the connection ends reconnect after a jittered,
// exponentially growing wait, or within the spread the gateway asked for
// when it said it was going away.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/agentproto"
	"github.com/portcullis/portcullis/internal/buildinfo"
	"github.com/portcullis/portcullis/internal/upstream"
)

// Config configures an agent. Gateway and StateDir are required.
type Config struct {
	// Gateway is the gateway's agent address, HOST:PORT.
	Gateway string
	// StateDir keeps the identity and the state (State).
	StateDir string
	// GatewayHostKey, when set (authorized_keys format or a SHA256:
	// fingerprint), is what the gateway's host key must be at
	// registration; empty trusts the key seen at registration, which is
	// then pinned.
	GatewayHostKey string
	// Registration: the key (never logged), the target's name (default
	// the host name), environment, labels, and Force to replace an agent
	// registered under the name with another identity.
	RegistrationKey string
	Name            string
	Environment     string
	Labels          map[string]string
	Force           bool
	// SSHD, when set, is the host's sshd (HOST:PORT) the agent forwards
	// sessions to; empty serves them with the built-in server.
	SSHD string
	// Builtin serves sessions in built-in mode; required when SSHD is
	// empty.
	Builtin ChannelServer
	// Version is the agent's version; default buildinfo.Version.
	Version string
	Log     *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between reconnects:
	// exponential from MinBackoff, capped at MaxBackoff, with full jitter.
	// Defaults 1s and 60s.
	MinBackoff, MaxBackoff time.Duration
	// Dial connects to the gateway; default a net.Dialer with a 10s
	// timeout. Tests count dials with it.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// ChannelServer serves one session channel of built-in mode: an SSH
// connection from the gateway to the target, on nc.
type ChannelServer interface {
	ServeConn(ctx context.Context, nc net.Conn, hostKey ssh.Signer, userCAs []ssh.PublicKey)
}

// Agent is a configured agent.
type Agent struct {
	cfg      Config
	identity ssh.Signer
	state    State
}

// New reads or makes the identity and reads the state.
func New(cfg Config) (*Agent, error) {
	if cfg.Gateway == "" || cfg.StateDir == "" {
		return nil, errors.New("agent: the gateway address and the state directory are required")
	}
	if cfg.SSHD == "" && cfg.Builtin == nil {
		return nil, errors.New("agent: no sshd to forward to and no built-in server")
	}
	if cfg.Version == "" {
		cfg.Version = buildinfo.Version
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 60 * time.Second
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second}
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	id, err := LoadOrCreateIdentity(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	st, err := LoadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, identity: id, state: st}, nil
}

// PublicKey is the agent's identity, authorized_keys format.
func (a *Agent) PublicKey() string { return upstream.AuthorizedKeyLine(a.identity.PublicKey()) }

// StateDir is where the identity and state are kept.
func (a *Agent) StateDir() string { return a.cfg.StateDir }

// Target is the name the agent is registered under ("" before).
func (a *Agent) Target() string { return a.state.Target }

func (a *Agent) mode() string {
	if a.cfg.SSHD != "" {
		return agentproto.ModeForward
	}
	return agentproto.ModeBuiltin
}

// NeedsRegistration reports whether Register must run before Run: never
// registered, or registered at another gateway or under another name or
// mode, or Force.
func (a *Agent) NeedsRegistration() bool {
	st := a.state
	return st.Target == "" || st.Gateway != a.cfg.Gateway || (a.cfg.Name != "" && st.Target != a.cfg.Name) ||
		st.Mode != a.mode() || a.cfg.Force
}

// RefusedError is the gateway's answer refusing a request, for the
// operator: one line, with no secret in it.
type RefusedError struct{ Message string }

func (e *RefusedError) Error() string { return "the gateway refused: " + e.Message }

// Register registers the agent's identity with the registration key and
// keeps the result in the state directory.
func (a *Agent) Register(ctx context.Context) error {
	if a.cfg.RegistrationKey == "" {
		return errors.New("this agent is not registered yet: give it a registration key (--registration-key or PORTCULLIS_REGISTRATION_KEY)")
	}
	name := a.cfg.Name
	if name == "" {
		return errors.New("the target name is required to register (--name)")
	}
	reg := agentproto.Registration{Key: a.cfg.RegistrationKey, Name: name, Environment: a.cfg.Environment,
		Labels: a.cfg.Labels, Force: a.cfg.Force, Mode: a.mode()}
	if a.cfg.SSHD != "" {
		hk, err := sshdHostKey(ctx, a.cfg.SSHD)
		if err != nil {
			return err
		}
		reg.HostKey, reg.Address = upstream.AuthorizedKeyLine(hk), a.cfg.SSHD
	}
	var seen ssh.PublicKey
	check := func(_ string, _ net.Addr, key ssh.PublicKey) error {
		if want := a.cfg.GatewayHostKey; want != "" && !hostKeyMatches(want, key) {
			return fmt.Errorf("the gateway's host key is %s, not the one given", ssh.FingerprintSHA256(key))
		}
		seen = key
		return nil
	}
	sc, reqs, err := a.connect(ctx, agentproto.UserRegister, check)
	if err != nil {
		return err
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	if _, err := a.hello(sc); err != nil {
		return err
	}
	body, _ := json.Marshal(reg)
	ok, ans, err := sc.SendRequest(agentproto.ReqRegister, true, body)
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if !ok {
		return refusal(ans)
	}
	var r agentproto.Registered
	if err := json.Unmarshal(ans, &r); err != nil {
		return errors.New("register: the gateway's answer is not valid JSON")
	}
	st := State{Gateway: a.cfg.Gateway, GatewayHostKey: upstream.AuthorizedKeyLine(seen), Target: r.Target, Mode: a.mode()}
	if err := SaveState(a.cfg.StateDir, st); err != nil {
		return err
	}
	a.state = st
	a.cfg.Force = false
	a.cfg.Log.Info("agent registered", "target", r.Target, "gateway", a.cfg.Gateway,
		"gateway_host_key", ssh.FingerprintSHA256(seen), "identity", ssh.FingerprintSHA256(a.identity.PublicKey()))
	return nil
}

func refusal(ans []byte) error {
	var r agentproto.Refusal
	if json.Unmarshal(ans, &r) != nil || r.Message == "" {
		return &RefusedError{Message: "no reason given"}
	}
	// One line, whatever the gateway sent.
	return &RefusedError{Message: strings.Join(strings.Fields(r.Message), " ")}
}

// hostKeyMatches compares key with an authorized_keys line or a SHA256:
// fingerprint.
func hostKeyMatches(want string, key ssh.PublicKey) bool {
	want = strings.TrimSpace(want)
	if strings.HasPrefix(want, "SHA256:") {
		return want == ssh.FingerprintSHA256(key)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(want))
	return err == nil && string(k.Marshal()) == string(key.Marshal())
}

// sshdHostKey reads the host key of the sshd at addr: the key sessions
// through the agent will find, pinned at the gateway.
func sshdHostKey(ctx context.Context, addr string) (ssh.PublicKey, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("reach the sshd to forward to: %w", err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	var key ssh.PublicKey
	errGot := errors.New("got the host key")
	cfg := &ssh.ClientConfig{User: "portcullis-agent", HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
		key = k
		return errGot
	}, HostKeyAlgorithms: []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoRSASHA512}}
	_, _, _, err = ssh.NewClientConn(nc, addr, cfg)
	if key == nil {
		return nil, fmt.Errorf("read the host key of the sshd at %s: %w", addr, err)
	}
	return key, nil
}

// connect dials the gateway and logs in as user with the identity.
func (a *Agent) connect(ctx context.Context, user string, check ssh.HostKeyCallback) (ssh.Conn, <-chan *ssh.Request, error) {
	chans, sc, reqs, err := a.connectChans(ctx, user, check)
	if err != nil {
		return nil, nil, err
	}
	go func() {
		for nch := range chans {
			_ = nch.Reject(ssh.Prohibited, "a registration connection takes no channels")
		}
	}()
	return sc, reqs, nil
}

func (a *Agent) connectChans(ctx context.Context, user string, check ssh.HostKeyCallback) (
	<-chan ssh.NewChannel, ssh.Conn, <-chan *ssh.Request, error) {
	nc, err := a.cfg.Dial(ctx, a.cfg.Gateway)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect to the gateway: %w", err)
	}
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	cc := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(a.identity)},
		HostKeyCallback: check, ClientVersion: "SSH-2.0-PortcullisAgent"}
	cc.KeyExchanges = upstream.KeyExchanges
	cc.Ciphers = upstream.Ciphers
	cc.MACs = upstream.MACs
	sc, chans, reqs, err := ssh.NewClientConn(nc, a.cfg.Gateway, cc)
	if err != nil {
		nc.Close()
		return nil, nil, nil, fmt.Errorf("log in to the gateway: %w", err)
	}
	_ = nc.SetDeadline(time.Time{})
	return chans, sc, reqs, nil
}

// hello exchanges versions; a refusal is the gateway's one line.
func (a *Agent) hello(sc ssh.Conn) (agentproto.Hello, error) {
	body, _ := json.Marshal(agentproto.Hello{Version: a.cfg.Version, Mode: a.mode()})
	ok, ans, err := sc.SendRequest(agentproto.ReqHello, true, body)
	if err != nil {
		return agentproto.Hello{}, fmt.Errorf("hello: %w", err)
	}
	if !ok {
		return agentproto.Hello{}, refusal(ans)
	}
	var h agentproto.Hello
	if err := json.Unmarshal(ans, &h); err != nil {
		return agentproto.Hello{}, errors.New("hello: the gateway's answer is not valid JSON")
	}
	return h, nil
}

// pinned checks the gateway's host key against the one pinned at
// registration.
func (a *Agent) pinned(_ string, _ net.Addr, key ssh.PublicKey) error {
	if !hostKeyMatches(a.state.GatewayHostKey, key) {
		return fmt.Errorf("the gateway's host key %s is not the one pinned at registration", ssh.FingerprintSHA256(key))
	}
	return nil
}

// Run keeps the agent connected until ctx ends. It never returns for a
// connection that failed: the gateway may come back, be upgraded, or be
// fixed; it waits and tries again, at most MaxBackoff apart.
func (a *Agent) Run(ctx context.Context) error {
	if a.state.Target == "" {
		return errors.New("agent: not registered")
	}
	attempt := 0
	var wait time.Duration
	// floor is the spread the gateway asked for when it went away: until
	// the agent is connected again, no retry window is narrower, so that
	// the agents whose first try came too early do not bunch up behind
	// it.
	var floor time.Duration
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		up, spread, err := a.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var refused *RefusedError
		switch {
		case errors.As(err, &refused):
			// A version or identity the gateway will not serve: say
			// so once a try, and try as seldom as allowed.
			a.cfg.Log.Error("the gateway refused the agent", "reason", refused.Message)
			attempt = 30
		case up >= a.cfg.MaxBackoff:
			attempt, floor = 0, 0
		case up > 0:
			// Connected but not for long: keep backing off from where
			// it was, so a gateway that drops agents at once is not
			// hammered.
			floor = 0
		default:
			attempt++
		}
		switch {
		case spread > 0:
			wait = rand.N(spread) + 1
			attempt, floor = 0, spread
		default:
			wait = a.backoff(attempt, floor)
		}
		if err != nil && refused == nil {
			a.cfg.Log.Warn("agent connection ended", "err", err, "retry_in", wait.Round(time.Millisecond).String())
		}
	}
}

// backoff is full jitter over an exponentially growing window:
// uniform in [0, min(MaxBackoff, max(floor, MinBackoff * 2^attempt))).
func (a *Agent) backoff(attempt int, floor time.Duration) time.Duration {
	window := a.cfg.MaxBackoff
	if attempt < 30 {
		if w := max(floor, a.cfg.MinBackoff<<attempt); w > 0 && w < window {
			window = w
		}
	}
	return rand.N(window) + 1
}

// session makes one connection and serves it until it ends. up is how long
// it was connected (zero if it never was); spread is the gateway's going-
// away spread, if it said so.
func (a *Agent) session(ctx context.Context) (time.Duration, time.Duration, error) {
	chans, sc, reqs, err := a.connectChans(ctx, a.state.Target, a.pinned)
	if err != nil {
		return 0, 0, err
	}
	defer sc.Close()
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	var (
		spreadMu sync.Mutex
		spread   time.Duration // the gateway's going-away spread
	)
	// Requests from the gateway: only its going-away notice matters.
	go func() {
		for req := range reqs {
			if req.Type == agentproto.ReqGoAway {
				var g agentproto.GoAway
				if json.Unmarshal(req.Payload, &g) == nil && g.SpreadMillis > 0 {
					spreadMu.Lock()
					spread = min(time.Duration(g.SpreadMillis)*time.Millisecond, a.cfg.MaxBackoff)
					spreadMu.Unlock()
				}
			}
			if req.WantReply {
				_ = req.Reply(req.Type == agentproto.ReqGoAway, nil)
			}
		}
	}()
	h, err := a.hello(sc)
	if err != nil {
		return 0, 0, err
	}
	var userCAs []ssh.PublicKey
	for _, line := range append([]string{h.UserCA}, h.UserCAs...) {
		if line == "" {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return 0, 0, errors.New("a user CA from the gateway does not parse")
		}
		userCAs = append(userCAs, k)
	}
	start := time.Now()
	a.cfg.Log.Info("agent connected", "target", a.state.Target, "gateway", a.cfg.Gateway, "gateway_version", h.Version)
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.heartbeat(sctx, sc, time.Duration(max(1, h.HeartbeatSeconds))*time.Second)
	}()
	for nch := range chans {
		if nch.ChannelType() != agentproto.ChanSession {
			_ = nch.Reject(ssh.UnknownChannelType, "unknown channel type")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go ssh.DiscardRequests(creqs)
		nc := agentproto.NewChannelConn(ch, sc.LocalAddr(), sc.RemoteAddr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.serveChannel(sctx, nc, userCAs)
		}()
	}
	cancel()
	err = sc.Wait()
	wg.Wait()
	spreadMu.Lock()
	goaway := spread
	spreadMu.Unlock()
	return time.Since(start), goaway, err
}

// heartbeat sends a keepalive every interval and closes the connection
// when one goes unanswered for two intervals.
func (a *Agent) heartbeat(ctx context.Context, sc ssh.Conn, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		answered := make(chan struct{})
		watchdog := time.AfterFunc(2*interval, func() { sc.Close() })
		go func() {
			defer close(answered)
			_, _, _ = sc.SendRequest(agentproto.ReqKeepalive, true, nil)
		}()
		select {
		case <-answered:
			watchdog.Stop()
		case <-ctx.Done():
			watchdog.Stop()
			return
		}
	}
}

// serveChannel connects one session channel to the sshd or the built-in
// server.
func (a *Agent) serveChannel(ctx context.Context, nc *agentproto.ChannelConn, userCAs []ssh.PublicKey) {
	defer nc.Close()
	if a.cfg.SSHD == "" {
		// The identity is the built-in server's host key: the one the
		// gateway pinned at registration.
		a.cfg.Builtin.ServeConn(ctx, nc, a.identity, userCAs)
		return
	}
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", a.cfg.SSHD)
	if err != nil {
		a.cfg.Log.Warn("the sshd to forward to is unreachable", "sshd", a.cfg.SSHD, "err", err)
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { up.Close(); nc.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = copyBuffer(up, nc)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = copyBuffer(nc, up)
	_ = nc.CloseWrite()
	<-done
}
