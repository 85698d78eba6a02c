package agentgate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/agentproto"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/upstream"
)

// agentConn is an agent's live connection.
type agentConn struct {
	target  string
	version string
	mode    string
	sc      *ssh.ServerConn
	since   time.Time

	mu       sync.Mutex
	replaced bool // another connection of the same identity took its place
}

// serveAgent keeps an agent's connection: it takes the target's place in
// the registry, answers heartbeats, and closes the connection when they
// stop.
func (s *Server) serveAgent(sc *ssh.ServerConn, reqs <-chan *ssh.Request, hello agentproto.Hello) {
	now := s.cfg.Now()
	ac := &agentConn{target: sc.User(), version: hello.Version, mode: hello.Mode, sc: sc, since: now}
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	old := s.agents[ac.target]
	s.agents[ac.target] = ac
	s.mu.Unlock()
	src := sc.RemoteAddr().String()
	key := sc.Permissions.Extensions[extKey]
	if old != nil {
		// The newest connection of an identity wins, always: the agent
		// that made it is the one that is alive now (the old one may be
		// half-open after a network change), and a rule that depends on
		// no timing cannot flap.
		old.mu.Lock()
		old.replaced = true
		old.mu.Unlock()
		old.sc.Close()
	}
	ctx := context.WithoutCancel(s.ctx)
	if err := s.cfg.Store.AgentConnected(ctx, ac.target, s.cfg.GatewayID, ac.version, now); err != nil {
		s.cfg.Log.Error("agent connection not recorded", "target", ac.target, "err", err)
	}
	s.write(store.AuditEvent{Type: audit.AgentConnect, Outcome: audit.Success, Target: ac.target, Source: src,
		Message: fmt.Sprintf("agent of %s connected (version %s, %s mode)", ac.target, ac.version, ac.mode),
		Detail: map[string]any{"fingerprint": fingerprint(key), "agent_version": ac.version, "mode": ac.mode,
			"gateway": s.cfg.GatewayID, "replaced": old != nil}})
	s.cfg.Log.Info("agent connected", "target", ac.target, "source", src, "agent_version", ac.version, "replaced", old != nil)

	// Heartbeats: a connection not heard from in three intervals is dead
	// (a half-open TCP connection would otherwise hold the target's place
	// until the kernel gives up, which takes hours).
	heard := make(chan struct{}, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		timer := time.NewTimer(3 * s.cfg.Heartbeat)
		defer timer.Stop()
		lastStored := now
		for {
			select {
			case <-done:
				return
			case <-heard:
				timer.Reset(3 * s.cfg.Heartbeat)
				// The store's last_seen is for people; once a minute
				// is enough and keeps 1,000 agents from writing
				// every few seconds.
				if t := s.cfg.Now(); t.Sub(lastStored) >= time.Minute {
					lastStored = t
					if err := s.cfg.Store.AgentSeen(ctx, ac.target, s.cfg.GatewayID, t); err != nil {
						s.cfg.Log.Warn("agent heartbeat not recorded", "target", ac.target, "err", err)
					}
				}
			case <-timer.C:
				s.cfg.Log.Warn("agent missed its heartbeats", "target", ac.target, "source", src)
				sc.Close()
				return
			}
		}
	}()
	for req := range reqs {
		switch req.Type {
		case agentproto.ReqKeepalive:
			select {
			case heard <- struct{}{}:
			default:
			}
			_ = req.Reply(true, nil)
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
	close(done)
	wg.Wait()

	s.mu.Lock()
	if s.agents[ac.target] == ac {
		delete(s.agents, ac.target)
	}
	s.mu.Unlock()
	ac.mu.Lock()
	replaced := ac.replaced
	ac.mu.Unlock()
	if !replaced {
		if err := s.cfg.Store.AgentDisconnected(ctx, ac.target, s.cfg.GatewayID, s.cfg.Now()); err != nil {
			s.cfg.Log.Error("agent disconnection not recorded", "target", ac.target, "err", err)
		}
	}
	s.write(store.AuditEvent{Type: audit.AgentDisconnect, Outcome: audit.Info, Target: ac.target, Source: src,
		Message: fmt.Sprintf("agent of %s disconnected", ac.target),
		Detail:  map[string]any{"replaced": replaced, "gateway": s.cfg.GatewayID, "seconds": int64(s.cfg.Now().Sub(ac.since) / time.Second)}})
	s.cfg.Log.Info("agent disconnected", "target", ac.target, "source", src, "replaced", replaced)
}

// DialAgent opens a channel to target's agent, over which the agent
// connects the gateway to its sshd or its built-in server. It implements
// upstream.AgentDialer.
func (s *Server) DialAgent(ctx context.Context, target string) (net.Conn, error) {
	s.mu.Lock()
	ac := s.agents[target]
	s.mu.Unlock()
	if ac == nil {
		// Connected to another gateway, maybe: go through it.
		return s.dialPeer(ctx, target)
	}
	return s.openChannel(ctx, ac, target)
}

// dialLocal opens a session channel to target's agent if it is connected
// to this gateway (what a peer asks for).
func (s *Server) dialLocal(ctx context.Context, target string) (net.Conn, error) {
	s.mu.Lock()
	ac := s.agents[target]
	s.mu.Unlock()
	if ac == nil {
		return nil, fmt.Errorf("%w to this gateway", upstream.ErrAgentNotConnected)
	}
	return s.openChannel(ctx, ac, target)
}

func (s *Server) openChannel(ctx context.Context, ac *agentConn, target string) (net.Conn, error) {
	type opened struct {
		ch   ssh.Channel
		reqs <-chan *ssh.Request
		err  error
	}
	res := make(chan opened, 1)
	// OpenChannel has no context: a wedged agent is cut off by closing
	// the channel that arrives late.
	go func() {
		ch, reqs, err := ac.sc.OpenChannel(agentproto.ChanSession, nil)
		res <- opened{ch, reqs, err}
	}()
	select {
	case o := <-res:
		if o.err != nil {
			return nil, fmt.Errorf("open a session channel to the agent of %s: %w", target, o.err)
		}
		go ssh.DiscardRequests(o.reqs)
		return agentproto.NewChannelConn(o.ch, ac.sc.LocalAddr(), ac.sc.RemoteAddr()), nil
	case <-ctx.Done():
		go func() {
			if o := <-res; o.err == nil {
				o.ch.Close()
				go ssh.DiscardRequests(o.reqs)
			}
		}()
		return nil, fmt.Errorf("open a session channel to the agent of %s: %w", target, ctx.Err())
	}
}

// Connected reports whether target's agent is connected to this gateway.
func (s *Server) Connected(target string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agents[target] != nil
}

// Disconnect closes target's agent connection on this gateway (an admin
// deleting or disconnecting it); the agent reconnects unless its identity
// is no longer registered.
func (s *Server) Disconnect(target string) error {
	s.mu.Lock()
	ac := s.agents[target]
	s.mu.Unlock()
	if ac == nil {
		return errors.New("agent not connected to this gateway")
	}
	return ac.sc.Close()
}

// Recheck ends the connections of agents whose target was deleted, or is
// no longer reached through its agent: such an agent has nothing left to
// serve, and its identity no longer logs in (authenticate asks the same).
// Subscribe it to the inventory.
func (s *Server) Recheck(snap *inventory.Snapshot) {
	s.mu.Lock()
	var gone []*agentConn
	for name, ac := range s.agents {
		if t := snap.Engine.Target(name); t == nil || !t.ThroughAgent() {
			gone = append(gone, ac)
		}
	}
	s.mu.Unlock()
	for _, ac := range gone {
		s.cfg.Log.Info("agent target removed: closing its agent's connection", "target", ac.target)
		ac.sc.Close()
	}
}

// copyAll copies with a pooled buffer.
func copyAll(dst io.Writer, src io.Reader) (int64, error) {
	b := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(b)
	return io.CopyBuffer(dst, src, *b)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
