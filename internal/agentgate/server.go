// Package agentgate is the gateway's front for targets that dial out: it
// accepts the agents' SSH connections (see package agentproto for the
// protocol), registers new agents with registration keys, keeps the one
// live connection of each agent, and opens a channel on it for every
// session to the target (DialAgent, which package upstream uses as it
// would dial TCP, so that sessions to agent targets go through the same
// policy, command control, recording and audit code as any other).
//
// During the lifecycle of an agent's connection, in order:
//
//  1. accept, key exchange with the gateway's host key, and public-key
//     authentication: as agentproto.UserRegister with any Ed25519 key, or
//     as a target's name with that agent's registered identity;
//  2. the agent's hello: its version is checked (agentproto.Compatible)
//     and a refusal is one line naming both versions;
//  3. a registration: one request, answered, then the connection ends;
//     an agent: it takes the target's place in the registry (replacing an
//     older connection of the same identity), the store records which
//     gateway holds it, and it stays until it ends, misses its
//     heartbeats, is replaced, or the gateway shuts down.
package agentgate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/agentproto"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/buildinfo"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/upstream"
)

// Store is what the front reads and writes: registration keys and agent
// rows.
type Store interface {
	GetAPIKey(ctx context.Context, id string) (store.APIKey, error)
	UseRegistrationKey(ctx context.Context, id string, at time.Time) error
	PutAgent(ctx context.Context, a store.Agent) error
	GetAgent(ctx context.Context, target string) (store.Agent, error)
	AgentConnected(ctx context.Context, target, gateway, version string, at time.Time) error
	AgentSeen(ctx context.Context, target, gateway string, at time.Time) error
	AgentDisconnected(ctx context.Context, target, gateway string, at time.Time) error
}

// Settings is the shared store's settings, where gateways publish their
// agent address for peering.
type Settings interface {
	GetSetting(ctx context.Context, name string) (string, error)
	SetSetting(ctx context.Context, name, value string) error
	ListSettings(ctx context.Context, prefix string) (map[string]string, error)
}

// Config configures the front. HostKey, Store, Inventory, Audit and Log
// are required.
type Config struct {
	// HostKey is the gateway's SSH host key, which agents pin.
	HostKey   ssh.Signer
	Store     Store
	Inventory *inventory.Inventory
	Audit     *audit.Log
	Log       *slog.Logger
	// UserCA is the gateway's user certificate authority: built-in agents
	// accept the certificates it signs. Nil: built-in agents accept none.
	UserCA ssh.PublicKey
	// GatewayID names this gateway in the store and to agents.
	GatewayID string
	// Version is the gateway's version for the agents' version check;
	// default buildinfo.Version.
	Version string
	// Heartbeat is how often an agent must be heard from: a connection
	// silent for three heartbeats is closed. Default 15s; agents send
	// theirs at the interval the gateway's hello names.
	Heartbeat time.Duration
	// HandshakeTimeout bounds key exchange, authentication and the hello.
	// Default 10s.
	HandshakeTimeout time.Duration
	// ReconnectRate is how many agents per second the gateway wants back
	// after it stops: at shutdown it asks each agent to wait a random time
	// within agents/ReconnectRate seconds (at least one) before it
	// reconnects. Default 50.
	ReconnectRate int
	// Settings, when set with GatewayID, publishes this gateway's agent
	// address and host key for its peers, and finds theirs: a session for
	// an agent connected to another gateway is forwarded there (proxy
	// peering). Nil: no peering.
	Settings Settings
	// AdvertiseAddr is the agent address peers reach this gateway at;
	// default the listener's address.
	AdvertiseAddr string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Server is the agent front.
type Server struct {
	cfg Config
	ssh *ssh.ServerConfig

	// mu guards agents, peers and conns. It is never held while writing to the
	// store or the network.
	mu     sync.Mutex
	agents map[string]*agentConn // by target: the live connection
	peers  map[string]ssh.Conn   // by gateway id: connections to peers
	conns  map[net.Conn]struct{} // every accepted connection, for Shutdown
	ctx    context.Context       // Serve's; cancelled by Shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per connection goroutine
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.HostKey == nil || cfg.Store == nil || cfg.Inventory == nil || cfg.Audit == nil || cfg.Log == nil {
		return nil, errors.New("agentgate: HostKey, Store, Inventory, Audit and Log are required")
	}
	if cfg.Version == "" {
		cfg.Version = buildinfo.Version
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReconnectRate <= 0 {
		cfg.ReconnectRate = 50
	}
	s := &Server{cfg: cfg, agents: map[string]*agentConn{}, conns: map[net.Conn]struct{}{}, peers: map[string]ssh.Conn{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	sc := &ssh.ServerConfig{ServerVersion: "SSH-2.0-Portcullis", PublicKeyCallback: s.authenticate}
	sc.KeyExchanges = upstream.KeyExchanges
	sc.Ciphers = upstream.Ciphers
	sc.MACs = upstream.MACs
	sc.PublicKeyAuthAlgorithms = []string{ssh.KeyAlgoED25519}
	sc.AddHostKey(cfg.HostKey)
	s.ssh = sc
	return s, nil
}

// Permission extensions set by authenticate.
const (
	extPurpose = "purpose" // "register" or "agent"
	extKey     = "key"     // the agent's public key, authorized_keys format
)

// authenticate accepts any Ed25519 key for a registration (the request that
// follows must carry a valid registration key) and, for any other login,
// only the registered identity of the target it names.
func (s *Server) authenticate(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if id, ok := strings.CutPrefix(meta.User(), peerUserPrefix); ok {
		return s.authenticatePeer(id, key)
	}
	if key.Type() != ssh.KeyAlgoED25519 {
		return nil, errors.New("agents authenticate with Ed25519 keys")
	}
	line := upstream.AuthorizedKeyLine(key)
	if meta.User() == agentproto.UserRegister {
		return &ssh.Permissions{Extensions: map[string]string{extPurpose: "register", extKey: line}}, nil
	}
	if t := s.cfg.Inventory.Snapshot().Engine.Target(meta.User()); t == nil || !t.ThroughAgent() {
		return nil, fmt.Errorf("no agent target %q", meta.User())
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	a, err := s.cfg.Store.GetAgent(ctx, meta.User())
	if err != nil || a.PublicKey != line {
		return nil, fmt.Errorf("no agent %q with key %s", meta.User(), ssh.FingerprintSHA256(key))
	}
	return &ssh.Permissions{Extensions: map[string]string{extPurpose: "agent", extKey: line}}, nil
}

// Serve accepts agents on ln until ctx ends or Shutdown is called.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	unblock := context.AfterFunc(s.ctx, func() { ln.Close() })
	defer unblock()
	s.publish(ctx, ln)
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return fmt.Errorf("agent listener: %w", err)
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		// Owned by s: it ends when the connection does, which Shutdown
		// forces by closing it.
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, nc)
				s.mu.Unlock()
			}()
			s.serveConn(nc)
		}()
	}
}

// Shutdown closes every agent connection (agents reconnect, to this
// gateway when it is back or to another) and waits for their goroutines,
// at most until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.cancel()
	agents := make([]*agentConn, 0, len(s.agents))
	for _, ac := range s.agents {
		agents = append(agents, ac)
	}
	s.mu.Unlock()
	// Going away: spread the agents' return over agents/ReconnectRate
	// seconds, so that a restart does not bring them all back in the
	// same second (the reconnect storm of other gateways' agents).
	spread := max(time.Second, time.Duration(len(agents))*time.Second/time.Duration(s.cfg.ReconnectRate))
	body, _ := json.Marshal(agentproto.GoAway{SpreadMillis: spread.Milliseconds()})
	for _, ac := range agents {
		_, _, _ = ac.sc.SendRequest(agentproto.ReqGoAway, false, body)
	}
	s.mu.Lock()
	for nc := range s.conns {
		nc.Close()
	}
	for _, pc := range s.peers {
		pc.Close()
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
		return fmt.Errorf("agent connections still closing: %w", ctx.Err())
	}
}

// serveConn runs one connection through the steps in the package comment.
func (s *Server) serveConn(nc net.Conn) {
	defer nc.Close()
	_ = nc.SetDeadline(s.cfg.Now().Add(s.cfg.HandshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.ssh)
	if err != nil {
		s.cfg.Log.Debug("agent handshake failed", "source", nc.RemoteAddr().String(), "err", err)
		return
	}
	defer sc.Close()
	if sc.Permissions.Extensions[extPurpose] == "peer" {
		go s.servePeerChannels(sc, chans)
	} else {
		// Agents open no channels.
		go func() {
			for nch := range chans {
				_ = nch.Reject(ssh.Prohibited, "agents open no channels")
			}
		}()
	}
	hello, ok := s.hello(sc, reqs)
	_ = nc.SetDeadline(time.Time{})
	if !ok {
		return
	}
	switch sc.Permissions.Extensions[extPurpose] {
	case "register":
		_ = nc.SetDeadline(s.cfg.Now().Add(s.cfg.HandshakeTimeout))
		s.serveRegistration(sc, reqs, hello)
	case "agent":
		s.serveAgent(sc, reqs, hello)
	case "peer":
		ssh.DiscardRequests(reqs)
	}
}

// hello waits for the agent's hello and checks its version.
func (s *Server) hello(sc *ssh.ServerConn, reqs <-chan *ssh.Request) (agentproto.Hello, bool) {
	req, ok := <-reqs
	if ok {
		if req.Type != agentproto.ReqHello {
			reply(req, false, agentproto.Refusal{Message: "the first request must be " + agentproto.ReqHello})
			return agentproto.Hello{}, false
		}
		var h agentproto.Hello
		if err := json.Unmarshal(req.Payload, &h); err != nil {
			reply(req, false, agentproto.Refusal{Message: "hello: malformed JSON"})
			return agentproto.Hello{}, false
		}
		if err := agentproto.Compatible(s.cfg.Version, h.Version); err != nil {
			reply(req, false, agentproto.Refusal{Message: err.Error()})
			s.write(store.AuditEvent{Type: audit.AgentRefuse, Outcome: audit.Failure, Target: targetOf(sc),
				Source: sc.RemoteAddr().String(), Message: err.Error(),
				Detail: map[string]any{"agent_version": h.Version, "gateway_version": s.cfg.Version}})
			return agentproto.Hello{}, false
		}
		ans := agentproto.Hello{Version: s.cfg.Version, Gateway: s.cfg.GatewayID,
			HeartbeatSeconds: max(1, int(s.cfg.Heartbeat/time.Second))}
		if s.cfg.UserCA != nil {
			ans.UserCA = upstream.AuthorizedKeyLine(s.cfg.UserCA)
		}
		if sc.Permissions.Extensions[extPurpose] == "agent" {
			ans.UserCAs = s.peerCAs(context.WithoutCancel(s.ctx))
		}
		reply(req, true, ans)
		return h, true
	}
	return agentproto.Hello{}, false
}

// targetOf is the target an agent connection logged in as ("" for a
// registration).
func targetOf(sc *ssh.ServerConn) string {
	if sc.Permissions.Extensions[extPurpose] == "agent" {
		return sc.User()
	}
	return ""
}

func reply(req *ssh.Request, ok bool, v any) {
	if !req.WantReply {
		return
	}
	b, _ := json.Marshal(v)
	_ = req.Reply(ok, b)
}

// write stores an audit event; the audit log spools what the store refuses.
func (s *Server) write(ev store.AuditEvent) {
	if err := s.cfg.Audit.Write(context.WithoutCancel(s.ctx), ev); err != nil {
		s.cfg.Log.Error("agent audit event not stored", "type", ev.Type, "err", err)
	}
}

// fingerprint is how logs and the audit trail name an agent's key.
func fingerprint(line string) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "?"
	}
	return ssh.FingerprintSHA256(k)
}
