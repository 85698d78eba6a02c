package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// How a caller reached the API.
const (
	ViaSocket  = "socket"  // the admin unix socket: the local superuser
	ViaAPIKey  = "apikey"  // an X-API-KEY header on the HTTPS listener
	ViaConsole = "console" // a web console session cookie
)

// LocalAdmin is the name of the principal on the admin unix socket:
// whoever can open the 0600 socket already owns the gateway's files.
const LocalAdmin = "local-admin"

// APIKeyHeader carries an API key on the HTTPS listener.
const APIKeyHeader = "X-API-KEY"

// Principal is the authenticated caller of a request.
type Principal struct {
	// Name is the user the request acts as: a User resource's name,
	// LocalAdmin on the socket, or "" for a global registration key.
	Name string
	// Via is ViaSocket, ViaAPIKey or ViaConsole.
	Via string
	// KeyID and KeyKind name the API key used (Via ViaAPIKey).
	KeyID   string
	KeyKind string
	// Roles are the user's roles, read from its User resource on every
	// request (a front leaves them empty), so that taking a role away
	// takes effect at once for keys and console sessions alike.
	Roles []string
}

// superuser reports the local admin of the socket.
func (p Principal) superuser() bool { return p.Via == ViaSocket }

// registration reports a registration key, which may only register
// targets.
func (p Principal) registration() bool { return p.KeyKind == store.APIKeyRegistration }

// admin reports full rights.
func (p Principal) admin() bool {
	return p.superuser() || (!p.registration() && slices.Contains(p.Roles, resource.RoleAdmin))
}

// auditor reports the right to read recordings, commands and the audit
// trail of everyone (admins have it too).
func (p Principal) auditor() bool {
	return p.admin() || (!p.registration() && slices.Contains(p.Roles, resource.RoleAuditor))
}

// actor is how the audit trail names the caller: its user, or the key
// for a global registration key, which acts as nobody.
func (p Principal) actor() string {
	if p.Name == "" && p.KeyID != "" {
		return "apikey:" + p.KeyID
	}
	return p.Name
}

type principalKey struct{}

// WithPrincipal returns ctx carrying the authenticated caller. A front
// sets it after authenticating a request.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller set by WithPrincipal.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// caller returns the request's principal; the zero Principal (no rights)
// when none, which requirePrincipal has already refused.
func caller(r *http.Request) Principal {
	p, _ := PrincipalFrom(r.Context())
	return p
}

type recheckKey struct{}

type csrfKey struct{}

// WithCSRFToken returns ctx carrying the console session's CSRF token, so
// that GET /api/v1/me can hand it to the page.
func WithCSRFToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, csrfKey{}, token)
}

// CSRFToken returns the token set by WithCSRFToken, or "".
func CSRFToken(ctx context.Context) string {
	t, _ := ctx.Value(csrfKey{}).(string)
	return t
}

// WithLocalAdmin makes every request through h come from LocalAdmin. Use it
// only on the admin unix socket, where the file mode is the authentication.
func WithLocalAdmin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := Principal{Name: LocalAdmin, Via: ViaSocket}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// Authenticator turns a request's credentials into its caller.
type Authenticator interface {
	// Authenticate returns the caller. ok is false when the request
	// carries none of this authenticator's credentials (the next one is
	// asked). A non-nil error means credentials were presented and
	// refused: an *AuthError is answered as it says, anything else as 401
	// with its message.
	Authenticate(r *http.Request) (p Principal, ok bool, err error)
}

// AuthError is a refusal by an Authenticator, answered as is.
type AuthError struct {
	Status  int
	Code    string
	Message string
}

func (e *AuthError) Error() string { return e.Message }

// HTTPS is the front of the HTTPS listener: it asks each authenticator in
// turn and serves h with the first principal found, or with none (h then
// answers 401 on every route that needs one).
func HTTPS(h http.Handler, auths ...Authenticator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// API answers hold audit data and keys: no cache keeps them, and
		// a browser that saw this origin once sticks to HTTPS.
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("Strict-Transport-Security", "max-age=31536000")
		hd.Set("X-Content-Type-Options", "nosniff")
		for _, a := range auths {
			p, ok, err := a.Authenticate(r)
			if err != nil {
				var ae *AuthError
				if errors.As(err, &ae) {
					writeErrorCode(w, ae.Status, ae.Code, ae.Message)
				} else {
					writeError(w, http.StatusUnauthorized, err.Error())
				}
				return
			}
			if ok {
				// Long answers (a live view) re-run this authenticator
				// on a copy of the request, so that a revoked key or an
				// ended console session cuts them off.
				rc := r.Clone(context.WithoutCancel(r.Context()))
				recheck := func() (Principal, error) {
					p2, ok2, err := a.Authenticate(rc)
					if err == nil && !ok2 {
						err = errors.New("the credentials are gone")
					}
					return p2, err
				}
				ctx := context.WithValue(WithPrincipal(r.Context(), p), recheckKey{}, recheck)
				h.ServeHTTP(w, r.WithContext(ctx))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// KeyAuthenticator checks X-API-KEY headers against the stored keys.
type KeyAuthenticator struct {
	store   store.Store
	audit   *audit.Log
	metrics *metrics.Metrics
	now     func() time.Time
}

// NewKeyAuthenticator returns the API key authenticator. Every refusal of
// an existing key is written to the audit trail (its id, never the
// secret).
func NewKeyAuthenticator(st store.Store, auditLog *audit.Log) *KeyAuthenticator {
	return &KeyAuthenticator{store: st, audit: auditLog, now: time.Now}
}

// WithMetrics counts refused keys in m.
func (k *KeyAuthenticator) WithMetrics(m *metrics.Metrics) *KeyAuthenticator {
	k.metrics = m
	return k
}

// Authenticate implements Authenticator.
func (k *KeyAuthenticator) Authenticate(r *http.Request) (Principal, bool, error) {
	value := r.Header.Get(APIKeyHeader)
	if value == "" {
		return Principal{}, false, nil
	}
	// Garbage and unknown ids are counted, not audited: anyone can send
	// them, and an event each would let anyone flood the trail. Every
	// refusal of a key that exists is audited.
	id, secret, err := apikey.Parse(strings.TrimSpace(value))
	if err != nil {
		k.metrics.APIKeyAuthFailure()
		return Principal{}, false, &AuthError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: err.Error()}
	}
	key, err := k.store.GetAPIKey(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// The same answer as a wrong secret: an id alone proves nothing.
		k.metrics.APIKeyAuthFailure()
		return Principal{}, false, &AuthError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "invalid API key"}
	case err != nil:
		// Fail closed, and say it is the gateway's fault.
		return Principal{}, false, &AuthError{Status: http.StatusServiceUnavailable, Code: "unavailable",
			Message: "cannot check the API key now: the gateway's store is unavailable"}
	}
	if !apikey.Verify(key.SecretHash, id, secret) {
		return Principal{}, false, k.refuse(r, id, http.StatusUnauthorized, "invalid API key")
	}
	// The caller holds the secret from here on: telling it why the key
	// no longer works helps and reveals nothing.
	now := k.now()
	if !key.RevokedAt.IsZero() {
		return Principal{}, false, k.refuse(r, id, http.StatusUnauthorized,
			fmt.Sprintf("API key %s was revoked at %s", id, key.RevokedAt.Format(time.RFC3339)))
	}
	if !key.ExpiresAt.IsZero() && !now.Before(key.ExpiresAt) {
		return Principal{}, false, k.refuse(r, id, http.StatusUnauthorized,
			fmt.Sprintf("API key %s expired at %s", id, key.ExpiresAt.Format(time.RFC3339)))
	}
	if len(key.SourceCIDRs) > 0 {
		addr := remoteAddr(r)
		if !inCIDRs(addr, key.SourceCIDRs) {
			return Principal{}, false, k.refuse(r, id, http.StatusForbidden,
				fmt.Sprintf("API key %s is not accepted from %s (source_cidrs)", id, addrString(addr)))
		}
	}
	return Principal{Name: key.Owner, Via: ViaAPIKey, KeyID: id, KeyKind: key.Kind}, true, nil
}

// refuse audits a refused key and returns the error to answer.
func (k *KeyAuthenticator) refuse(r *http.Request, id string, status int, msg string) error {
	k.metrics.APIKeyAuthFailure()
	if k.audit != nil {
		detail := map[string]any{"method": r.Method, "path": r.URL.Path}
		if id != "" {
			detail["key_id"] = id
		}
		// A refusal the trail cannot record is still a refusal.
		_ = k.audit.Write(r.Context(), store.AuditEvent{Type: audit.APIKeyDeny, Outcome: audit.Deny,
			Source: source(r), Message: msg, Detail: detail})
	}
	code := "unauthorized"
	if status == http.StatusForbidden {
		code = "forbidden"
	}
	return &AuthError{Status: status, Code: code, Message: msg}
}

// remoteAddr is the client's address (issue 7 adds PROXY protocol, which
// rewrites RemoteAddr before it gets here).
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "an unknown address"
	}
	return a.String()
}

// inCIDRs reports whether a is in one of cidrs; an invalid address is in
// none.
func inCIDRs(a netip.Addr, cidrs []string) bool {
	if !a.IsValid() {
		return false
	}
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Contains(a) {
			return true
		}
	}
	return false
}
