package agentgate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/agentproto"
	"github.com/portcullis/portcullis/internal/upstream"
)

// Proxy peering: a session for an agent connected to another gateway (the
// agents table names it) is forwarded to that gateway over SSH, and that
// gateway opens the channel to its agent. Both ends are authenticated: a
// gateway publishes its agent address and host key in the shared store
// (setting peerSettingPrefix+ID) when it starts serving; a peer logs in as
// "peer:ID" with its host key, which must be the one ID published, and
// checks the other's host key the same way. A peer channel reaches only the
// agents connected to the gateway it arrives at: no second hop.

const (
	peerUserPrefix    = "peer:"
	peerSettingPrefix = "agent_peer."
	// chanPeerSession asks a gateway for a session channel to one of its
	// agents; the extra data is the target's name (SSH string).
	chanPeerSession = "peer-session@portcullis"
)

// peerInfo is what a gateway publishes for its peers.
type peerInfo struct {
	Addr    string `json:"addr"`
	HostKey string `json:"host_key"`
	UserCA  string `json:"user_ca,omitempty"`
}

// publish records this gateway's agent address and host key for peers.
func (s *Server) publish(ctx context.Context, ln net.Listener) {
	if s.cfg.Settings == nil || s.cfg.GatewayID == "" {
		return
	}
	addr := s.cfg.AdvertiseAddr
	if addr == "" {
		addr = ln.Addr().String()
	}
	info := peerInfo{Addr: addr, HostKey: upstream.AuthorizedKeyLine(s.cfg.HostKey.PublicKey())}
	if s.cfg.UserCA != nil {
		info.UserCA = upstream.AuthorizedKeyLine(s.cfg.UserCA)
	}
	b, _ := json.Marshal(info)
	if err := s.cfg.Settings.SetSetting(ctx, peerSettingPrefix+s.cfg.GatewayID, string(b)); err != nil {
		s.cfg.Log.Error("agent peering: this gateway's address not published", "err", err)
	}
}

func (s *Server) peer(ctx context.Context, id string) (peerInfo, error) {
	var p peerInfo
	if s.cfg.Settings == nil {
		return p, errors.New("peering is off")
	}
	v, err := s.cfg.Settings.GetSetting(ctx, peerSettingPrefix+id)
	if err != nil {
		return p, fmt.Errorf("gateway %s has published no agent address: %w", id, err)
	}
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return p, fmt.Errorf("gateway %s's published agent address does not parse", id)
	}
	return p, nil
}

// authenticatePeer accepts gateway id's published host key.
func (s *Server) authenticatePeer(id string, key ssh.PublicKey) (*ssh.Permissions, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	p, err := s.peer(ctx, id)
	if err != nil || id == s.cfg.GatewayID || p.HostKey != upstream.AuthorizedKeyLine(key) {
		return nil, fmt.Errorf("no peer gateway %q with key %s", id, ssh.FingerprintSHA256(key))
	}
	return &ssh.Permissions{Extensions: map[string]string{extPurpose: "peer", extKey: p.HostKey}}, nil
}

// servePeerChannels serves a peer's session channels, each with a
// channel to a local agent.
func (s *Server) servePeerChannels(sc *ssh.ServerConn, chans <-chan ssh.NewChannel) {
	for nch := range chans {
		if nch.ChannelType() != chanPeerSession {
			_ = nch.Reject(ssh.UnknownChannelType, "unknown channel type")
			continue
		}
		var p struct{ Target string }
		if ssh.Unmarshal(nch.ExtraData(), &p) != nil {
			_ = nch.Reject(ssh.ConnectionFailed, "malformed peer session request")
			continue
		}
		go func() {
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
			up, err := s.dialLocal(ctx, p.Target)
			cancel()
			if err != nil {
				_ = nch.Reject(ssh.ConnectionFailed, err.Error())
				return
			}
			defer up.Close()
			ch, reqs, err := nch.Accept()
			if err != nil {
				return
			}
			defer ch.Close()
			go ssh.DiscardRequests(reqs)
			s.cfg.Log.Debug("peer session", "peer", strings.TrimPrefix(sc.User(), peerUserPrefix), "target", p.Target)
			pipe(ch, up)
		}()
	}
}

// pipe copies both ways until both directions end.
func pipe(a ssh.Channel, b net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = copyAll(b, a)
		if cw, ok := b.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	_, _ = copyAll(a, b)
	_ = a.CloseWrite()
	<-done
}

// dialPeer opens a session channel to target's agent through the gateway
// holding its connection.
func (s *Server) dialPeer(ctx context.Context, target string) (net.Conn, error) {
	a, err := s.cfg.Store.GetAgent(ctx, target)
	if err != nil || a.Gateway == "" || a.Gateway == s.cfg.GatewayID {
		return nil, fmt.Errorf("%w to any gateway", upstream.ErrAgentNotConnected)
	}
	pc, err := s.peerClient(ctx, a.Gateway)
	if err != nil {
		return nil, err
	}
	ch, reqs, err := pc.OpenChannel(chanPeerSession, ssh.Marshal(struct{ Target string }{target}))
	if err != nil {
		return nil, fmt.Errorf("through gateway %s: %w", a.Gateway, err)
	}
	go ssh.DiscardRequests(reqs)
	return agentproto.NewChannelConn(ch, pc.LocalAddr(), pc.RemoteAddr()), nil
}

// peerClient returns the connection to gateway id, making it if there is
// none alive.
func (s *Server) peerClient(ctx context.Context, id string) (ssh.Conn, error) {
	s.mu.Lock()
	if pc := s.peers[id]; pc != nil {
		s.mu.Unlock()
		return pc, nil
	}
	s.mu.Unlock()
	p, err := s.peer(ctx, id)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return nil, fmt.Errorf("reach peer gateway %s: %w", id, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(s.cfg.HandshakeTimeout)
	}
	_ = nc.SetDeadline(deadline)
	cc := &ssh.ClientConfig{User: peerUserPrefix + s.cfg.GatewayID, Auth: []ssh.AuthMethod{ssh.PublicKeys(s.cfg.HostKey)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if upstream.AuthorizedKeyLine(key) != p.HostKey {
				return fmt.Errorf("peer gateway %s presented %s, not its published host key", id, ssh.FingerprintSHA256(key))
			}
			return nil
		}, ClientVersion: "SSH-2.0-Portcullis"}
	cc.KeyExchanges = upstream.KeyExchanges
	cc.Ciphers = upstream.Ciphers
	cc.MACs = upstream.MACs
	sc, chans, reqs, err := ssh.NewClientConn(nc, p.Addr, cc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("log in to peer gateway %s: %w", id, err)
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		for nch := range chans {
			_ = nch.Reject(ssh.Prohibited, "peers open no channels here")
		}
	}()
	body, _ := json.Marshal(agentproto.Hello{Version: s.cfg.Version, Gateway: s.cfg.GatewayID})
	if ok, ans, err := sc.SendRequest(agentproto.ReqHello, true, body); err != nil || !ok {
		sc.Close()
		return nil, fmt.Errorf("peer gateway %s refused: %s", id, ans)
	}
	_ = nc.SetDeadline(time.Time{})
	s.mu.Lock()
	if old := s.peers[id]; old != nil || s.ctx.Err() != nil {
		s.mu.Unlock()
		sc.Close()
		if old != nil {
			return old, nil
		}
		return nil, errors.New("the gateway is stopping")
	}
	s.peers[id] = sc
	s.mu.Unlock()
	// Owned by s: forget the connection when it ends (Shutdown closes it).
	go func() {
		_ = sc.Wait()
		s.mu.Lock()
		if s.peers[id] == sc {
			delete(s.peers, id)
		}
		s.mu.Unlock()
	}()
	return sc, nil
}

// peerCAs returns the user CAs the other gateways published.
func (s *Server) peerCAs(ctx context.Context) []string {
	if s.cfg.Settings == nil {
		return nil
	}
	all, err := s.cfg.Settings.ListSettings(ctx, peerSettingPrefix)
	if err != nil {
		s.cfg.Log.Warn("agent peering: peers' user CAs not read", "err", err)
		return nil
	}
	var out []string
	for name, v := range all {
		var p peerInfo
		if name == peerSettingPrefix+s.cfg.GatewayID || json.Unmarshal([]byte(v), &p) != nil || p.UserCA == "" {
			continue
		}
		out = append(out, p.UserCA)
	}
	return out
}
