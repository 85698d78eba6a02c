// Package sso signs people in with an OpenID Connect provider: it builds
// the authorization request (code flow with PKCE S256, state and nonce)
// and turns the code the browser brings back into a verified identity.
// The console and the SSH front (through the console's browser flow)
// share it; neither keeps any provider logic of its own.
//
// An identity is its (issuer, subject) pair: the email and name claims are
// carried along for display and for naming a created user, never to find
// who someone is.
//
// The provider's discovery document is fetched on first use, not by New,
// and again after a failure: a provider down when the gateway starts must
// not keep the gateway (and its local admins) from starting.
package sso

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Errors Exchange and AuthURL wrap, so that callers can tell the person
// what happened without parsing messages.
var (
	// ErrUnavailable means the provider could not be reached or answered
	// with a server error: the sign-in fails closed, and trying again
	// later may work.
	ErrUnavailable = errors.New("identity provider unavailable")
	// ErrRejected means the provider refused the code (used, expired,
	// wrong verifier) or its ID token failed verification: wrong issuer
	// or audience, expired, bad or missing signature, wrong nonce.
	ErrRejected = errors.New("single sign-on refused")
)

// DefaultTimeout bounds each request to the provider when Config.Timeout
// is 0.
const DefaultTimeout = 10 * time.Second

// Config is a provider and the gateway's client at it.
type Config struct {
	// Issuer is the provider's issuer URL; the discovery document and
	// every ID token must state exactly this. Required.
	Issuer string
	// ClientID is the gateway's client id, and the audience every ID
	// token must name. Required.
	ClientID string
	// ClientSecret is empty for a public client.
	ClientSecret string
	// RedirectURL is the callback registered at the provider. Required.
	RedirectURL string
	// Scopes asked; nil means openid, email and profile.
	Scopes []string
	// GroupsClaim names the claim that lists groups; "" means "groups".
	GroupsClaim string
	// UsernameClaim names the claim a created user is named after; ""
	// means "preferred_username".
	UsernameClaim string
	// Timeout bounds each request to the provider; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// HTTPClient talks to the provider; nil means a client with Timeout.
	// Tests pass one that trusts their provider.
	HTTPClient *http.Client
	// Now is the clock ID tokens' expiry is checked against; nil means
	// time.Now.
	Now func() time.Time
}

// Identity is who the provider says signed in.
type Identity struct {
	// Issuer and Subject identify the account; together they are the key.
	Issuer  string
	Subject string
	// Username is the UsernameClaim's value, Email the email claim; either
	// may be empty.
	Username string
	Email    string
	// Groups is the GroupsClaim's value: a list of strings, or one string.
	Groups []string
}

// Provider is one OpenID Connect provider. Its methods are safe for
// concurrent use.
type Provider struct {
	cfg    Config
	client *http.Client
	// ctx carries the HTTP client for go-oidc's key set, which keeps the
	// context it was created with for later key fetches: it must not be a
	// request's.
	ctx context.Context

	mu       sync.Mutex // guards provider, verifier, oauth
	provider *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
	oauth    oauth2.Config
}

// New checks cfg. It does not contact the provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("sso: Issuer, ClientID and RedirectURL are required")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{gooidc.ScopeOpenID, "email", "profile"}
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "preferred_username"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	return &Provider{cfg: cfg, client: client, ctx: gooidc.ClientContext(context.Background(), client)}, nil
}

// Issuer returns the configured issuer URL.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// discover returns the provider's endpoints, fetching the discovery
// document on first use and after a failure.
func (p *Provider) discover(ctx context.Context) (*gooidc.IDTokenVerifier, oauth2.Config, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provider != nil {
		return p.verifier, p.oauth, nil
	}
	// The fetch follows the caller's deadline as well as the client's
	// timeout, but what it builds lives on p.ctx.
	type result struct {
		prov *gooidc.Provider
		err  error
	}
	done := make(chan result, 1)
	go func() {
		prov, err := gooidc.NewProvider(p.ctx, p.cfg.Issuer)
		done <- result{prov, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		return nil, oauth2.Config{}, fmt.Errorf("%w: discovery at %s: %w", ErrUnavailable, p.cfg.Issuer, ctx.Err())
	}
	if res.err != nil {
		return nil, oauth2.Config{}, fmt.Errorf("%w: discovery at %s: %w", ErrUnavailable, p.cfg.Issuer, res.err)
	}
	p.provider = res.prov
	// Signing algorithms come from the discovery document, filtered by
	// go-oidc to the asymmetric ones it supports: "none" is never
	// accepted.
	p.verifier = res.prov.Verifier(&gooidc.Config{ClientID: p.cfg.ClientID, Now: p.cfg.Now})
	p.oauth = oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret,
		Endpoint: res.prov.Endpoint(), RedirectURL: p.cfg.RedirectURL, Scopes: p.cfg.Scopes}
	return p.verifier, p.oauth, nil
}

// Flow is the secrets of one sign-in, all derived from one random
// secret that only the browser that started it holds (in a cookie): the
// state echoed in the callback, the nonce the ID token must carry, and the
// PKCE verifier. Deriving them means a gateway that did not start the
// flow can finish it from the cookie alone.
type Flow struct {
	State, Nonce, Verifier string
}

// NewFlow derives a flow's secrets from secret, in separate hash domains:
// the state travels in URLs, and must reveal neither the nonce nor the
// verifier.
func NewFlow(secret string) Flow {
	derive := func(domain string) string {
		sum := sha256.Sum256([]byte("portcullis-sso-" + domain + "\x00" + secret))
		return base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return Flow{State: derive("state"), Nonce: derive("nonce"), Verifier: derive("verifier")}
}

// AuthURL returns where to send the browser to sign in for f.
func (p *Provider) AuthURL(ctx context.Context, f Flow) (string, error) {
	_, oc, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	return oc.AuthCodeURL(f.State, gooidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), nil
}

// Exchange trades the code of the callback of f for the signed-in
// identity: the code is redeemed with f's verifier, and the ID token must
// be signed by the provider's keys, issued by Issuer, for ClientID, not
// expired, and carry f's nonce.
func (p *Provider) Exchange(ctx context.Context, f Flow, code string) (Identity, error) {
	verifier, oc, err := p.discover(ctx)
	if err != nil {
		return Identity{}, err
	}
	ctx, cancel := context.WithTimeout(gooidc.ClientContext(ctx, p.client), p.cfg.Timeout)
	defer cancel()
	tok, err := oc.Exchange(context.WithValue(ctx, oauth2.HTTPClient, p.client), code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return Identity{}, fmt.Errorf("%w: code exchange: %w", ErrRejected, err)
		}
		return Identity{}, fmt.Errorf("%w: code exchange: %w", ErrUnavailable, err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Identity{}, fmt.Errorf("%w: the token response has no id_token", ErrRejected)
	}
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		if ctx.Err() != nil {
			return Identity{}, fmt.Errorf("%w: verify ID token: %w", ErrUnavailable, err)
		}
		return Identity{}, fmt.Errorf("%w: verify ID token: %w", ErrRejected, err)
	}
	if idt.Nonce != f.Nonce {
		// A token minted for another sign-in (replayed or injected).
		return Identity{}, fmt.Errorf("%w: ID token nonce does not match this sign-in", ErrRejected)
	}
	if idt.Subject == "" {
		return Identity{}, fmt.Errorf("%w: ID token has no subject", ErrRejected)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: ID token claims: %w", ErrRejected, err)
	}
	id := Identity{Issuer: idt.Issuer, Subject: idt.Subject, Groups: stringList(claims[p.cfg.GroupsClaim])}
	id.Username, _ = claims[p.cfg.UsernameClaim].(string)
	id.Email, _ = claims["email"].(string)
	return id, nil
}

// stringList reads a claim that is a list of strings or one string;
// anything else is no groups.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// ErrNoUser means no User is linked to the provider account, and none may
// be created for it: the sign-in is refused.
var ErrNoUser = errors.New("no user is linked to this provider account")
