package server

import (
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/jit"
)

// buildJIT makes the just-in-time service with the notifiers the config
// names.
func (s *Server) buildJIT(auditLog *audit.Log) error {
	s.jit = jit.New(jit.Config{Store: s.store, Inventory: s.inv, Audit: auditLog, Log: s.log.With("part", "jit")})
	return nil
}
