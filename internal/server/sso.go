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
	"github.com/portcullis/portcullis/internal/sso"
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
		name, err := s.inv.OIDCUser(ctx, id.Issuer, id.Subject, id.Username, id.Email, create)
		if errors.Is(err, inventory.ErrNoLinkedUser) {
			return "", fmt.Errorf("%w: %w", sso.ErrNoUser, err)
		}
		return name, err
	}
}
