package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/directory"
	"github.com/portcullis/portcullis/internal/jit"
)

// buildJIT makes the just-in-time service with the notifiers the config
// names.
func (s *Server) buildJIT(auditLog *audit.Log) error {
	var notifiers []jit.Notifier
	if c := s.cfg.JIT; c != nil && c.Slack != nil {
		token, err := readSecretFile("jit.slack.bot_token_file", c.Slack.BotTokenFile)
		if err != nil {
			return err
		}
		secret, err := readSecretFile("jit.slack.signing_secret_file", c.Slack.SigningSecretFile)
		if err != nil {
			return err
		}
		s.slack = &jit.Slack{Token: token, SigningSecret: []byte(secret), Channel: c.Slack.Channel, APIURL: c.Slack.APIURL,
			ResponseHosts: c.Slack.ResponseHosts}
		notifiers = append(notifiers, s.slack)
	}
	var webhook *jit.Webhook
	if c := s.cfg.JIT; c != nil && c.Webhook != nil {
		secret, err := readSecretFile("jit.webhook.secret_file", c.Webhook.SecretFile)
		if err != nil {
			return err
		}
		webhook = &jit.Webhook{URL: c.Webhook.URL, Secret: []byte(secret), ConsoleURL: strings.TrimSuffix(c.Webhook.ConsoleURL, "/")}
		notifiers = append(notifiers, webhook)
	}
	s.jitNow = time.Now
	now := func() time.Time { return s.jitNow() }
	if s.slack != nil {
		s.slack.Now = now
	}
	s.jit = jit.New(jit.Config{Store: s.store, Inventory: s.inv, Audit: auditLog, Log: s.log.With("part", "jit"), Notifiers: notifiers, Now: now,
		Groups: s.jitGroups()})
	if s.slack != nil {
		s.slack.Attach(s.jit)
	}
	if webhook != nil {
		webhook.Attach(s.jit)
	}
	return nil
}

// readSecretFile reads a one-line secret, trailing newline ignored.
func readSecretFile(key, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("%s: %s is empty", key, path)
	}
	return v, nil
}

// jitGroups gives the JIT service the directory groups of users who are
// not local, as the SSH front sees them, so that a jit policy or approver
// naming a directory group works from the API and console too; nil
// without a directory.
func (s *Server) jitGroups() func(ctx context.Context, user string) ([]string, error) {
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
