package server

import (
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/pgproxy"
	"github.com/portcullis/portcullis/internal/vault"
)

// buildPG builds the PostgreSQL front when pg_addr is set. It shares the
// HTTPS certificate, the identity checks of the console (gateway password,
// directory) and the SSH front's audit, recordings and MFA.
func (s *Server) buildPG(v *vault.Vault) error {
	if s.cfg.PGAddr == "" {
		return nil
	}
	cert, err := s.loadTLS()
	if err != nil {
		return err
	}
	cfg := pgproxy.Config{
		TLS:               httpsTLSConfig(cert),
		Snapshot:          s.inv.Snapshot,
		Vault:             v,
		Credentials:       s.store,
		DirectoryPassword: s.consoleDirectoryPassword(),
		MFA:               s.mfa,
		Audit:             s.audit,
		Log:               s.log.With("front", "postgres"),
		Recordings:        s.recordings,
		Available:         s.health.Available,
		StartupTimeout:    time.Duration(s.cfg.AuthTimeout),
		DialTimeout:       time.Duration(s.cfg.DialTimeout),
		Failures:          s.failures,
	}
	if peers, ok := s.store.(pgproxy.CancelPeers); ok {
		// Gateways sharing a PostgreSQL store pass cancel requests for
		// each other's sessions.
		cfg.Peers = peers
	}
	if s.pg, err = pgproxy.New(cfg); err != nil {
		return fmt.Errorf("postgres front: %w", err)
	}
	s.inv.Subscribe(s.pg.Recheck)
	return nil
}

// PGAddr returns the bound PostgreSQL address, nil when pg_addr is empty.
func (s *Server) PGAddr() net.Addr {
	if s.pgLn == nil {
		return nil
	}
	return s.pgLn.Addr()
}

// sessions is what the API lists and ends: the SSH front's sessions, the
// web API and Kubernetes fronts' and, when it runs, the PostgreSQL front's.
func (s *Server) sessions() livesession.Controller {
	f := fronts{s.gate, webSessions{s}, kubeSessions{s}}
	if s.pg != nil {
		f = append(f, s.pg)
	}
	return f
}

// fronts is several fronts' sessions as one Controller.
type fronts []livesession.Controller

// List implements livesession.Controller.
func (f fronts) List() []livesession.Session {
	var out []livesession.Session
	for _, c := range f {
		out = append(out, c.List()...)
	}
	slices.SortStableFunc(out, func(a, b livesession.Session) int { return a.Started.Compare(b.Started) })
	return out
}

// Kill implements livesession.Controller.
func (f fronts) Kill(id, by, message string) error {
	for _, c := range f {
		if err := c.Kill(id, by, message); err != livesession.ErrNotFound {
			return err
		}
	}
	return livesession.ErrNotFound
}
