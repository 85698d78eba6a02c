package server

import (
	"fmt"
	"net/http"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/httpproxy"
	"github.com/portcullis/portcullis/internal/vault"
)

// buildHTTPProxy builds the web API front (package httpproxy) over the
// HTTPS listener's handler: requests for TARGET.<http_host> and /t/TARGET/
// go to it, every other request to next (API, console). Callers
// authenticate as on the API: an access API key (X-API-KEY, or bearer),
// or a console session; or by an intercepted vSphere login checked with
// the console's password and directory checks and the SSH front's MFA.
func (s *Server) buildHTTPProxy(v *vault.Vault, next http.Handler, keys api.Authenticator) (http.Handler, error) {
	console := s.console.Authenticator()
	caller := func(r *http.Request) (httpproxy.Caller, bool, error) {
		for _, a := range []api.Authenticator{keys, console} {
			p, ok, err := a.Authenticate(r)
			if err != nil {
				return httpproxy.Caller{}, false, err
			}
			if !ok {
				continue
			}
			if p.Via == api.ViaAPIKey && p.KeyKind != "access" {
				return httpproxy.Caller{}, false, fmt.Errorf("API key %s is not an access key", p.KeyID)
			}
			if p.Name == "" {
				return httpproxy.Caller{}, false, fmt.Errorf("this key acts as no user")
			}
			via := "console"
			if p.Via == api.ViaAPIKey {
				via = "api key"
			}
			return httpproxy.Caller{User: p.Name, Via: via, Key: p.KeyID}, true, nil
		}
		return httpproxy.Caller{}, false, nil
	}
	front, err := httpproxy.New(httpproxy.Config{
		Snapshot:          s.inv.Snapshot,
		Vault:             v,
		Credentials:       s.store,
		DirectoryPassword: s.consoleDirectoryPassword(),
		MFA:               s.mfa,
		Audit:             s.audit,
		Log:               s.log.With("front", "http"),
		Caller:            caller,
		Available:         s.health.Available,
		Host:              s.cfg.HTTPHost,
	})
	if err != nil {
		return nil, fmt.Errorf("web API front: %w", err)
	}
	s.webAPI = front
	s.inv.Subscribe(front.Recheck)
	return front.Wrap(next), nil
}
