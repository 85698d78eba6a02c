package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/proxyproto"
	"github.com/portcullis/portcullis/internal/web"
)

// listenHTTPS loads or generates the certificate, binds api_addr and
// builds the handler of the HTTPS listener:
//
//	/api/v1/...  the REST API; callers by X-API-KEY or console cookie
//	/healthz     200 while the store answers and takes writes, 503 otherwise (no auth)
//	/metrics     Prometheus metrics: counts only, no names (no auth)
//	/ and /ui/   the web console (package web)
//
// and, before all of them, the web API front (package httpproxy): every
// request for TARGET.<http_host>, and /t/TARGET/... on any host.
func (s *Server) listenHTTPS() error {
	cert, err := s.loadTLS()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen https on %s: %w", s.cfg.APIAddr, err)
	}
	if s.cfg.APIProxyProtocol {
		// The balancer's header comes before the TLS handshake.
		ln = proxyproto.NewListener(ln, proxyproto.Config{Trusted: s.cfg.TrustedProxies(), Log: s.log.With("front", "https")})
	}
	s.apiLn = tls.NewListener(ln, httpsTLSConfig(cert))

	console, err := web.New(web.Config{
		Store: s.store,
		Users: func(_ context.Context, name string) (bool, error) {
			_, ok := s.inv.Snapshot().UserRoles(name)
			return ok, nil
		},
		Roles: func(_ context.Context, name string) ([]string, error) {
			roles, _ := s.inv.Snapshot().UserRoles(name)
			return roles, nil
		},
		MFA:               s.mfa,
		DirectoryPassword: s.consoleDirectoryPassword(),
		SSO:               s.sso,
		SSOUser:           s.consoleSSOUser(),
		RequireMFA: func(_ context.Context, name string) (bool, error) {
			return s.inv.Snapshot().Engine.UserRequiresMFA(name), nil
		},
		Audit:       s.audit,
		Log:         s.log.With("front", "console"),
		IdleTimeout: time.Duration(s.cfg.ConsoleIdleTimeout),
		MaxAge:      time.Duration(s.cfg.ConsoleMaxAge),
	})
	if err != nil {
		return fmt.Errorf("web console: %w", err)
	}
	s.console = console

	// An API key is asked first: a script that sends one must never be
	// taken for the browser session that happens to share its cookie jar.
	keys := api.NewKeyAuthenticator(s.store, s.audit).WithMetrics(s.metrics)
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", s.failClosed(api.HTTPS(s.api, keys, console.Authenticator())))
	mux.HandleFunc("GET /healthz", s.healthz)
	if s.slack != nil {
		// Signed by Slack, not by a user: the handler verifies it.
		mux.Handle("POST /slack/interactions", s.failClosed(s.slack))
	}
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.Handle("/", s.failClosed(console.Handler()))
	// Web API targets are routed before the mux (by host, then by the
	// /t/ prefix), so that no path on a target's host reaches the API.
	if s.https, err = s.buildHTTPProxy(s.vault, mux, keys); err != nil {
		return err
	}
	// Kubernetes targets by host and under /k8s/ (a prefix the web API
	// front and the API leave alone); the front sends every other target
	// host on to the web API front.
	if s.https, err = s.buildKubeProxy(s.vault, s.https, keys); err != nil {
		return err
	}
	return nil
}

// loadTLS loads (or generates, once) the certificate the HTTPS API and the
// PostgreSQL front share.
func (s *Server) loadTLS() (tls.Certificate, error) {
	if s.apiTLS.Certificate != nil {
		return s.apiTLS, nil
	}
	certFile, keyFile, generate := s.cfg.TLSCertFile, s.cfg.TLSKeyFile, false
	if certFile == "" {
		certFile, keyFile, generate = filepath.Join(s.cfg.DataDir, "api_tls.crt"), filepath.Join(s.cfg.DataDir, "api_tls.key"), true
	}
	cert, created, err := loadOrCreateTLS(certFile, keyFile, generate, time.Now(), targetHostNames(s.cfg.HTTPHost)...)
	if err != nil {
		return cert, err
	}
	s.apiTLS = cert
	if created {
		s.log.Info("generated self-signed TLS certificate", "file", certFile, "sha256", certFingerprint(cert))
	}
	return cert, nil
}

// targetHostNames are the names a generated certificate covers beyond the
// machine's own: http_host and *.http_host, under which web API and
// kubernetes targets are served by host. A name that is no DNS name (an
// IP address, a typo with a space) adds nothing.
func targetHostNames(httpHost string) []string {
	h := strings.TrimSuffix(httpHost, ".")
	for i := 0; i < len(h); i++ {
		if h[i] >= 0x80 {
			// strings.ToLower would fold the Kelvin sign into k.
			return nil
		}
	}
	h = strings.ToLower(h)
	if h == "" || net.ParseIP(h) != nil || !dnsName(h) {
		return nil
	}
	return []string{h, "*." + h}
}

// dnsName reports whether h is a syntactically valid DNS host name:
// labels of letters, digits and inner hyphens, at most 63 bytes each.
func dnsName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// httpsTLSConfig is the HTTPS listener's TLS: 1.2 or 1.3, and in 1.2 only
// ECDHE key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305). CBC
// suites (Lucky13-style padding oracles) and static RSA key exchange (no
// forward secrecy) are not offered. TLS 1.3 suites are all AEAD and not
// configurable.
func httpsTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos: []string{"h2", "http/1.1"},
	}
}

// healthz answers whether this gateway can serve with a whole audit
// trail: its store answers within two seconds, and takes writes (no audit
// event waits in the spool, no recording row waits to be stored). A load
// balancer takes it out of rotation otherwise, so that in HA new sessions
// go to a gateway whose trail is in the database. Sessions go on here:
// their events are safe in the spool and reach the store when it takes
// writes again. (For that reason /healthz is a readiness check; a
// liveness probe that restarts the gateway on 503 would end them.)
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if _, err := s.store.Revision(ctx); err != nil {
		s.log.Warn("health check: store unavailable", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"unavailable","store":"unreachable"}` + "\n"))
		return
	}
	if reason := s.writeHealth(); reason != "" {
		body, _ := json.Marshal(map[string]string{"status": "degraded", "store": "writes failing", "reason": reason})
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write(append(body, '\n'))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// writeHealth says what of the audit trail and the recordings' rows waits
// for the store, "" when nothing does.
func (s *Server) writeHealth() string {
	var parts []string
	if err := s.audit.Health(); err != nil {
		parts = append(parts, err.Error())
	}
	if n := s.recordings.RowsPending(); n > 0 {
		parts = append(parts, fmt.Sprintf("%d recordings wait to be stored", n))
	}
	return strings.Join(parts, "; ")
}

// failClosed answers 503 while the store is unreachable: credentials,
// roles and revocations cannot be checked then, and the answer says so
// rather than failing later with a 500 or, worse, deciding on stale data.
func (s *Server) failClosed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.health.Available(); err != nil {
			w.Header().Set("Retry-After", "5")
			api.WriteError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		h.ServeHTTP(w, r)
	})
}

// httpErrorLog is the log.Logger net/http writes its own errors to. A
// failed TLS handshake is logged at debug: every browser that meets the
// self-signed certificate for the first time, every port scanner, makes
// one, and a WARN for each drowns what matters. Anything else net/http
// reports stays a warning.
func httpErrorLog(log *slog.Logger) *stdlog.Logger {
	return stdlog.New(httpErrorWriter{log}, "", 0)
}

type httpErrorWriter struct{ log *slog.Logger }

func (w httpErrorWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg, "component", "http")
	return len(p), nil
}
