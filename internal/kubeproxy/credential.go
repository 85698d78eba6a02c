package kubeproxy

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/authlimit"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/signin"
	"github.com/portcullis/portcullis/internal/store"
)

// EventSignIn is the audit event type of a sign-in for a kubectl
// credential (portcullis kube-credential), granted or refused.
const EventSignIn = "kube.signin"

// Credential lifetimes: a credential lasts DefaultCredentialTTL unless the
// client asks for less; never more than MaxCredentialTTL.
const (
	DefaultCredentialTTL = 8 * time.Hour
	MaxCredentialTTL     = 12 * time.Hour
	MinCredentialTTL     = 5 * time.Minute
)

// CredentialRequest is a sign-in for a kubectl credential.
type CredentialRequest struct {
	User, Password string
	// Code is the verification code, "" when none was asked yet.
	Code   string
	Target string
	// TTL is the lifetime asked for; zero: DefaultCredentialTTL.
	TTL time.Duration
	// Addr and Source are the client's address and host:port.
	Addr   netip.Addr
	Source string
}

// Credential is a short-lived access API key for one user.
type Credential struct {
	Token     string
	KeyID     string
	ExpiresAt time.Time
}

// CredentialError is a refused sign-in: Status is the HTTP status, Message
// is safe to show the client, CodeRequired says to ask for a verification
// code and try again.
type CredentialError struct {
	Status       int
	Message      string
	CodeRequired bool
}

func (e *CredentialError) Error() string { return e.Message }

// CredentialConfig is what IssueCredential needs beyond Config; set by
// Server.EnableCredentials.
type CredentialConfig struct {
	// SignIn checks user names, passwords and verification codes.
	SignIn *signin.Checker
	// Failures is the failed-login budget the fronts share.
	Failures *authlimit.Limiter
	// Keys stores the minted keys.
	Keys interface {
		CreateAPIKey(ctx context.Context, k store.APIKey) error
	}
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// EnableCredentials turns on IssueCredential, or changes its config.
func (s *Server) EnableCredentials(c CredentialConfig) {
	if c.Now == nil {
		c.Now = time.Now
	}
	s.cred.Store(&c)
}

// IssueCredential signs a user in for kubectl and mints a short-lived
// access API key, which the Kubernetes front (and every other front that
// takes access keys) accepts until it expires or is revoked. In order:
// the source's failed-login budget is charged (package authlimit, shared
// with the other fronts); the password and, when the user or a policy
// requires one, the verification code are checked (package signin); the
// user must have some access to the target (discovery); then the key is
// stored with its expiry. The budget is refunded once the password (and
// code) proved right, and when only the code is missing. Every outcome is
// audited as kube.signin. Errors are *CredentialError.
func (s *Server) IssueCredential(ctx context.Context, req CredentialRequest) (Credential, error) {
	c := s.cred.Load()
	if c == nil || c.SignIn == nil || c.Keys == nil {
		return Credential{}, &CredentialError{Status: http.StatusServiceUnavailable, Message: "this gateway issues no kubectl credentials"}
	}
	ev := store.AuditEvent{Type: EventSignIn, Source: req.Source, Target: req.Target,
		Detail: map[string]any{"action": "kubernetes", "via": "kube-credential"}}
	deny := func(status int, why, tell string) (Credential, error) {
		ev.Outcome, ev.Message = audit.Deny, why
		s.audit(ev)
		return Credential{}, &CredentialError{Status: status, Message: tell}
	}
	switch {
	case req.User == "" || len(req.User) > 256 || strings.ContainsAny(req.User, "\x00\r\n"):
		return Credential{}, &CredentialError{Status: http.StatusBadRequest, Message: "user: a gateway user name is required"}
	case req.Password == "":
		return Credential{}, &CredentialError{Status: http.StatusBadRequest, Message: "password: required"}
	case req.Code != "" && (len(req.Code) != signin.CodeDigits || strings.Trim(req.Code, "0123456789") != ""):
		return Credential{}, &CredentialError{Status: http.StatusBadRequest, Message: "code: a verification code is 6 digits"}
	case !resource.ValidName(req.Target):
		return Credential{}, &CredentialError{Status: http.StatusBadRequest, Message: "target: not a resource name"}
	case req.TTL < 0 || req.TTL > MaxCredentialTTL || req.TTL != 0 && req.TTL < MinCredentialTTL:
		return Credential{}, &CredentialError{Status: http.StatusBadRequest,
			Message: fmt.Sprintf("ttl: between %s and %s", MinCredentialTTL, MaxCredentialTTL)}
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultCredentialTTL
	}
	refund := func() {}
	if c.Failures != nil {
		var ok bool
		if refund, ok = c.Failures.Charge(req.Addr); !ok {
			return deny(http.StatusTooManyRequests, "too many failed sign-ins from this source",
				"too many failed sign-ins from your address: wait a minute and try again")
		}
	}
	res := c.SignIn.Check(ctx, signin.Attempt{User: req.User, Password: req.Password + req.Code, Addr: req.Addr,
		Source: req.Source, Via: "kubernetes"})
	ev.User = res.Known
	ev.Detail["method"] = res.Method
	if !res.OK {
		if res.CodeMissing && req.Code == "" {
			// The password was right: asking for the code is no
			// failure to charge.
			refund()
			ev.Outcome, ev.Message = audit.Info, "verification code asked for"
			s.audit(ev)
			return Credential{}, &CredentialError{Status: http.StatusUnauthorized, Message: "a verification code is required", CodeRequired: true}
		}
		tell := res.Tell
		if tell == "" || res.CodeMissing {
			tell = "wrong user name or password"
		}
		return deny(http.StatusUnauthorized, "sign-in refused: "+res.Why, tell)
	}
	ev.Detail["mfa"] = res.MFA
	// The user proved who they are: what follows is no failed sign-in.
	refund()
	snap := s.cfg.Snapshot()
	t := snap.Engine.Target(req.Target)
	if t == nil || !t.IsKubernetes() {
		return deny(http.StatusForbidden, "no such kubernetes target", fmt.Sprintf("access denied: %s may not reach %s", req.User, req.Target))
	}
	d := snap.Engine.DecideKube(policy.KubeRequest{Kind: res.Ident.Kind, Subject: req.User, Groups: res.Groups,
		Target: t.Name, Source: req.Addr, Discovery: true})
	if !d.Allow {
		return deny(http.StatusForbidden, d.Reason, d.Reason)
	}
	id, token, err := apikey.New()
	if err != nil {
		return Credential{}, err
	}
	_, secret, err := apikey.Parse(token)
	if err != nil {
		return Credential{}, err
	}
	now := c.Now()
	exp := now.Add(ttl).Truncate(time.Second)
	if err := c.Keys.CreateAPIKey(ctx, store.APIKey{ID: id, Name: "kube-credential " + t.Name, Kind: store.APIKeyAccess,
		Owner: req.User, CreatedBy: req.User, SecretHash: apikey.Hash(id, secret), CreatedAt: now, ExpiresAt: exp}); err != nil {
		s.cfg.Log.Error("store a kubectl credential", "user", req.User, "err", err)
		return deny(http.StatusServiceUnavailable, "store the key: "+err.Error(), "cannot issue a credential now; try again later")
	}
	ev.Outcome, ev.Message = audit.Success, fmt.Sprintf("kubectl credential issued until %s", exp.UTC().Format(time.RFC3339))
	ev.Detail["key_id"], ev.Detail["expires_at"] = id, exp.UTC().Format(time.RFC3339)
	s.audit(ev)
	return Credential{Token: token, KeyID: id, ExpiresAt: exp}, nil
}
