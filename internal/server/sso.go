package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/sshgate"
	"github.com/portcullis/portcullis/internal/sso"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/web"
)

// openSSO builds the provider of the `oidc:` section; nil when there is
// none. It reads the client secret but does not contact the provider: a
// provider down at start must not keep the gateway from starting.
func openSSO(c *config.OIDC) (*sso.Provider, error) {
	if c == nil {
		return nil, nil
	}
	sc := sso.Config{Issuer: c.Issuer, ClientID: c.ClientID, RedirectURL: c.RedirectURL, Scopes: c.Scopes,
		GroupsClaim: c.GroupsClaim, UsernameClaim: c.UsernameClaim, Timeout: time.Duration(c.Timeout)}
	if c.ClientSecretFile != "" {
		b, err := os.ReadFile(c.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("oidc.client_secret_file: %w", err)
		}
		if sc.ClientSecret = strings.TrimRight(string(b), "\r\n"); sc.ClientSecret == "" {
			return nil, fmt.Errorf("oidc.client_secret_file: %s is empty", c.ClientSecretFile)
		}
	}
	p, err := sso.New(sc)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return p, nil
}

// consoleSSOUser maps a verified provider account to its User, creating
// one when oidc.create_users allows; nil without single sign-on.
func (s *Server) consoleSSOUser() func(ctx context.Context, id sso.Identity) (string, error) {
	if s.sso == nil {
		return nil
	}
	create := s.cfg.OIDC.CreateUsers
	return func(ctx context.Context, id sso.Identity) (string, error) {
		name, err := s.inv.OIDCUser(ctx, id.Issuer, id.Subject, id.Username, id.Email, id.Groups, create)
		if errors.Is(err, inventory.ErrNoLinkedUser) {
			return "", fmt.Errorf("%w: %w", sso.ErrNoUser, err)
		}
		return name, err
	}
}

// sshSSO lets users linked to a provider account connect over SSH by
// signing in at the console in a browser; nil without single sign-on or
// without a console to sign in at. The URL shown is the console of
// oidc.redirect_url, the address people's browsers already reach.
func (s *Server) sshSSO() *sshgate.SSOLogin {
	if s.sso == nil || s.cfg.APIAddr == "" {
		return nil
	}
	base := strings.TrimSuffix(s.cfg.OIDC.RedirectURL, "/ui/oidc/callback")
	issuer := s.sso.Issuer()
	return &sshgate.SSOLogin{
		Linked: func(ctx context.Context, name string) (bool, error) {
			o, err := s.inv.Get(ctx, resource.KindUser, name)
			if errors.Is(err, store.ErrNotFound) {
				return false, nil
			}
			if err != nil {
				return false, fmt.Errorf("read user %q: %w", name, err)
			}
			u, ok := o.(*resource.User)
			return ok && u.OIDCIssuer == issuer && u.OIDCSubject != "", nil
		},
		Begin: func(ctx context.Context, user string, expires time.Time) (string, string, error) {
			code, err := web.BeginSSHSignIn(ctx, s.store, user, time.Now(), expires)
			if err != nil {
				return "", "", err
			}
			return code, base + "/ui/oidc/ssh/" + code, nil
		},
		Done: func(ctx context.Context, code, user string) (bool, error) {
			return web.FinishSSHSignIn(ctx, s.store, code, user, time.Now())
		},
		Cache: time.Duration(s.cfg.OIDC.SSOCache),
	}
}
