package kubeproxy

import (
	"net"
	"net/http"
	"strings"

	"github.com/portcullis/portcullis/internal/resource"
)

// Wrap returns a handler that serves kubernetes targets, by host name
// (TARGET.<Config.Host>) or by path (/k8s/TARGET/... on any other host),
// and passes every other request to next.
//
// A request whose Host or TLS server name has the shape of a target host
// is routed by that name alone: a kubernetes target is served here, and
// anything else (another protocol's target, a deleted or unknown one) goes
// to next, which must be the web API front: it answers every target host
// itself and never lets one reach the gateway's API or console. Such a
// request is never looked at for /k8s/, so that one target's origin cannot
// reach another target by path. A Host that disagrees with the TLS server
// name, when either names a target host, is answered 421 (HTTP/2
// connection coalescing, or a forged Host).
func (s *Server) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := hostOnly(r.Host)
		sni := ""
		if r.TLS != nil {
			sni = hostOnly(r.TLS.ServerName)
		}
		name, byHost := s.targetHost(host)
		_, bySNI := s.targetHost(sni)
		if byHost || bySNI {
			if sni != "" && sni != host {
				writeStatus(w, http.StatusMisdirectedRequest, "misdirected request: the TLS server name and the Host differ")
				return
			}
			if t := s.cfg.Snapshot().Engine.Target(name); t != nil && t.IsKubernetes() {
				s.serve(w, r, name, r.URL.EscapedPath())
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		raw := r.URL.EscapedPath()
		if !strings.HasPrefix(raw, PathPrefix) && !strings.HasPrefix(r.URL.Path, PathPrefix) {
			next.ServeHTTP(w, r)
			return
		}
		name, rest, _ := strings.Cut(strings.TrimPrefix(raw, PathPrefix), "/")
		if !resource.ValidName(name) {
			writeStatus(w, http.StatusBadRequest, "bad target path: use /k8s/TARGET/...")
			return
		}
		s.serve(w, r, name, "/"+rest)
	})
}

// targetHost returns the target name a host names: the one label before
// .<Config.Host>, a valid resource name. host is lowercase (hostOnly).
func (s *Server) targetHost(host string) (string, bool) {
	if s.cfg.Host == "" || host == "" {
		return "", false
	}
	label, ok := strings.CutSuffix(host, "."+s.cfg.Host)
	if !ok || label == "" || strings.Contains(label, ".") {
		return "", false
	}
	return label, true
}

// hostOnly is the host name of a Host header or TLS server name without
// its port and trailing dot, in lowercase. Only ASCII is lowered: a name
// with any other byte (an IDN not in punycode) names no target, so that
// Unicode case folding (the Kelvin sign K lowers to k) cannot make two
// spellings of one target host.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(h, ".")
	b := []byte(h)
	for i, c := range b {
		switch {
		case c >= 0x80:
			return ""
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
