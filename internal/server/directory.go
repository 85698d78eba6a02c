package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/directory"
	"github.com/portcullis/portcullis/internal/sshgate"
)

// openDirectory builds the directory client of the `directory:` section;
// nil when there is none. It reads the files the section names but does
// not connect: a directory down at start must not keep the gateway (and
// its local admins) from starting.
func openDirectory(c *config.Directory) (*directory.Directory, error) {
	if c == nil {
		return nil, nil
	}
	dc := directory.Config{
		URLs: c.URL, StartTLS: c.StartTLS, BindDN: c.BindDN,
		UserBase: c.UserBase, UserFilter: c.UserFilter, GroupBase: c.GroupBase, GroupFilter: c.GroupFilter,
		LoginAttribute: c.LoginAttribute, EmailAttribute: c.EmailAttribute, SSHKeyAttribute: c.SSHKeyAttribute,
		GroupNameAttribute: c.GroupNameAttribute, FollowReferrals: c.FollowReferrals,
		Timeout: time.Duration(c.Timeout), CacheTTL: time.Duration(c.CacheTTL), PoolSize: c.PoolSize,
	}
	if c.BindPasswordFile != "" {
		b, err := os.ReadFile(c.BindPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("directory.bind_password_file: %w", err)
		}
		dc.BindPassword = strings.TrimRight(string(b), "\r\n")
		if dc.BindPassword == "" {
			// An empty password would make the service bind anonymous.
			return nil, fmt.Errorf("directory.bind_password_file: %s is empty", c.BindPasswordFile)
		}
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("directory.ca_file: %w", err)
		}
		dc.RootCAs = x509.NewCertPool()
		if !dc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("directory.ca_file: %s holds no PEM certificate", c.CAFile)
		}
	}
	d, err := directory.New(dc)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return d, nil
}

// directoryLogin is the SSH front's directory sign-in; nil without a
// directory.
func (s *Server) directoryLogin() *sshgate.DirectoryLogin {
	if s.directory == nil {
		return nil
	}
	return &sshgate.DirectoryLogin{Directory: s.directory, IsLocal: s.inv.IsLocalIdentity, Ensure: s.inv.EnsureDirectoryUser}
}

// consoleDirectoryPassword checks a console sign-in against the
// directory, creating the User on first sign-in; nil without a directory.
// A local identity never signs in with a directory password.
func (s *Server) consoleDirectoryPassword() func(ctx context.Context, user, password string) (bool, error) {
	if s.directory == nil {
		return nil
	}
	return func(ctx context.Context, user, password string) (bool, error) {
		if password == "" {
			return false, nil
		}
		local, err := s.inv.IsLocalIdentity(ctx, user)
		if err != nil || local {
			return false, err
		}
		u, err := s.directory.Authenticate(ctx, user, password)
		switch {
		case errors.Is(err, directory.ErrInvalidCredentials):
			return false, nil
		case err != nil:
			return false, err
		}
		if err := s.inv.EnsureDirectoryUser(ctx, u.Login, u.Email); err != nil {
			return false, err
		}
		return true, nil
	}
}
