package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"net"

	"github.com/portcullis/portcullis/internal/agent"
	"github.com/portcullis/portcullis/internal/agentproto"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/upstream"
)

// LocalTargetName is the target the gateway's own machine is served as
// with local_target.
const LocalTargetName = "local"

// AgentAddr returns the agent listener's address, nil when agent_addr is
// empty.
func (s *Server) AgentAddr() net.Addr {
	if s.agentLn == nil {
		return nil
	}
	return s.agentLn.Addr()
}

// agentDialer is what the SSH front reaches agent targets through: nil
// (unreachable) without the agent front.
func (s *Server) agentDialer() upstream.AgentDialer {
	if s.agents == nil {
		return nil
	}
	return s.agents
}

// localAgent prepares the built-in agent that serves this machine as
// target "local": its identity in DATA/local-agent, the target (created if
// absent; a "local" target the gateway dials is left alone and the agent
// not started) and its agent row, registered directly since the gateway
// trusts itself, and the agent's state pinned to this gateway's host key.
func (s *Server) localAgent(ctx context.Context) (*agent.Agent, error) {
	dir := filepath.Join(s.cfg.DataDir, "local-agent")
	id, err := agent.LoadOrCreateIdentity(dir)
	if err != nil {
		return nil, err
	}
	pub := upstream.AuthorizedKeyLine(id.PublicKey())
	want := &resource.Target{Kind: resource.KindTarget, Name: LocalTargetName, Via: resource.ViaAgent,
		HostKey: pub, Auth: resource.AuthCertificate, Labels: map[string]string{"portcullis": "local"}}
	switch old := s.inv.Snapshot().Engine.Target(LocalTargetName); {
	case old != nil && !old.ThroughAgent():
		return nil, errors.New(`a target named "local" exists and is not an agent target: rename it, or run without --local-target`)
	case old == nil || old.HostKey != pub || old.AuthMode() != resource.AuthCertificate:
		if _, err := s.inv.Apply(ctx, []resource.Object{want}); err != nil {
			return nil, fmt.Errorf("store target local: %w", err)
		}
	}
	if a, err := s.store.GetAgent(ctx, LocalTargetName); err != nil || a.PublicKey != pub {
		if err := s.store.PutAgent(ctx, store.Agent{Target: LocalTargetName, PublicKey: pub, Mode: agentproto.ModeBuiltin,
			RegisteredAt: time.Now()}); err != nil {
			return nil, err
		}
		_ = s.audit.Write(ctx, store.AuditEvent{Type: audit.AgentRegister, Outcome: audit.Success, Target: LocalTargetName,
			User: "local-target", Message: "the gateway's own machine registered as target local (built-in agent)",
			Detail: map[string]any{"mode": agentproto.ModeBuiltin, "key_id": ""}})
	}
	addr := s.agentLn.Addr().String()
	if err := agent.SaveState(dir, agent.State{Gateway: addr, GatewayHostKey: upstream.AuthorizedKeyLine(s.hostKey.PublicKey()),
		Target: LocalTargetName, Mode: agentproto.ModeBuiltin}); err != nil {
		return nil, err
	}
	log := s.log.With("part", "local-agent")
	b, err := agent.NewBuiltin(agent.BuiltinConfig{Log: log})
	if err != nil {
		return nil, err
	}
	return agent.New(agent.Config{Gateway: addr, StateDir: dir, Builtin: b, Log: log,
		MaxBackoff: 5 * time.Second})
}

func (s *Server) agentAddrString() string {
	if s.agentLn == nil {
		return ""
	}
	return s.agentLn.Addr().String()
}

// agentBinary is the binary the autodiscovery script installs: the
// configured one, or this one.
func agentBinary(configured string) string {
	if configured != "" {
		return configured
	}
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}
