package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/directory"
	"github.com/portcullis/portcullis/internal/httpproxy"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/store"
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
			if p.Via == api.ViaAPIKey && p.KeyKind != store.APIKeyAccess {
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
		Groups:            s.directoryGroups(),
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

// webSessions is the web API front's sessions as a Controller. The API
// takes its controllers before the HTTPS listener (and with it the front)
// is built, so this one looks the front up on each call.
type webSessions struct{ s *Server }

// List implements livesession.Controller.
func (w webSessions) List() []livesession.Session {
	if w.s.webAPI == nil {
		return nil
	}
	return w.s.webAPI.List()
}

// Kill implements livesession.Controller.
func (w webSessions) Kill(id, by, message string) error {
	if w.s.webAPI == nil {
		return livesession.ErrNotFound
	}
	return w.s.webAPI.Kill(id, by, message)
}

// directoryGroups returns the directory groups of a user who is not local,
// for the web API front's sign-in; nil without a directory.
func (s *Server) directoryGroups() func(ctx context.Context, user string) ([]string, error) {
	if s.directory == nil {
		return nil
	}
	return func(ctx context.Context, user string) ([]string, error) {
		local, err := s.inv.IsLocalIdentity(ctx, user)
		if err != nil || local {
			return nil, err
		}
		u, err := s.directory.Lookup(ctx, user)
		if errors.Is(err, directory.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return u.Groups, nil
	}
}
