package server

import (
	"net"

	"github.com/portcullis/portcullis/internal/upstream"
)

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
