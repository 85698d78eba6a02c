package pgproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/resource"
)

// errNoPassword: the account holds no database password.
var errNoPassword = errors.New("the gateway holds no password for this account")

// dialUpstream logs in to the database as targetUser with the account's
// sealed password, by SCRAM-SHA-256 only (a server asking for the password
// in clear or MD5 is refused before it is sent), with the Target's TLS
// check, and hijacks the connection for the relay.
func (s *Server) dialUpstream(ctx context.Context, snap *inventory.Snapshot, t *resource.Target, targetUser, database string, params map[string]string) (*pgconn.HijackedConn, error) {
	if t == nil {
		return nil, errors.New("target vanished")
	}
	sealed, aad, ok := snap.AccountPassword(t.Name, targetUser)
	if !ok {
		return nil, errNoPassword
	}
	pw, err := s.cfg.Vault.Open(sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoPassword, err)
	}
	cfg, err := upstreamConfig(t)
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password, cfg.Database = targetUser, string(pw), database
	cfg.RuntimeParams = params
	cfg.ConnectTimeout = s.cfg.DialTimeout
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// pgconn may still have a background reader in a Read on the
	// connection (it starts one when a write of the login is slow, as
	// under load), or bytes in its buffer: either would take the first
	// bytes of the database's answer after the hijack, and the client's
	// first query would never be answered. SyncConn stops the reader and
	// drains the buffer, as pgconn asks before Hijack.
	if err := conn.SyncConn(ctx); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("sync the connection before taking it over: %w", err)
	}
	hc, err := conn.Hijack()
	if err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("hijack: %w", err)
	}
	return hc, nil
}

// upstreamConfig is a pgconn config for the target with nothing taken from
// the gateway's environment (PGHOST, PGSSLMODE, ~/.pgpass...): every field
// that matters is set here.
func upstreamConfig(t *resource.Target) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig("sslmode=disable require_auth=scram-sha-256 channel_binding=prefer")
	if err != nil {
		return nil, fmt.Errorf("upstream config: %w", err)
	}
	host, port, err := splitHostPort(t.Address)
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port = host, port
	cfg.Fallbacks = nil
	cfg.ValidateConnect, cfg.AfterConnect = nil, nil
	cfg.KerberosSrvName, cfg.KerberosSpn = "", ""
	cfg.TLSConfig, err = upstreamTLS(t, host)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

func splitHostPort(addr string) (string, uint16, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("target address %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("target address %q: bad port", addr)
	}
	return host, uint16(port), nil
}

// upstreamTLS builds the TLS config a Target's tls_mode asks for; nil for
// disable.
func upstreamTLS(t *resource.Target, host string) (*tls.Config, error) {
	mode := t.TLSModeOrDefault()
	if mode == resource.TLSDisable {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	var roots *x509.CertPool
	if t.TLSCA != "" {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM([]byte(t.TLSCA)) {
			return nil, errors.New("target tls_ca holds no certificate")
		}
	}
	switch mode {
	case resource.TLSRequire:
		cfg.InsecureSkipVerify = true
	case resource.TLSVerifyCA:
		// The chain is checked, not the name: done by hand because Go
		// checks both or neither.
		cfg.InsecureSkipVerify = true
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("server sent no certificate")
			}
			certs := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return fmt.Errorf("server certificate: %w", err)
				}
				certs[i] = c
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	default: // verify-full
		cfg.RootCAs = roots
	}
	return cfg, nil
}

// upstreamMessage says why the database could not be opened, in words fit
// for the client: the database's own refusal is passed on (it names the
// database or role, which the client asked for), network detail is not.
func upstreamMessage(err error) string {
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		return pe.Message
	case errors.Is(err, errNoPassword):
		return errNoPassword.Error()
	case strings.Contains(err.Error(), "certificate"):
		return "the database's TLS certificate was not accepted"
	}
	return "the database is unreachable"
}

// upstreamState is the SQLSTATE for a failed upstream login.
func upstreamState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return stateCannotConnect
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
