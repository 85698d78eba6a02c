package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/store"
)

// Cookie names. The __Host- prefix makes the browser refuse the cookie
// unless it is Secure, has Path=/ and no Domain: no other host, and no
// plain-HTTP page of this one, can set or shadow it.
const (
	sessionCookie   = "__Host-pc_session"
	loginCSRFCookie = "__Host-pc_csrf"
)

// csrfHeader carries the CSRF token on state-changing requests.
const csrfHeader = "X-CSRF-Token"

// touchEvery is how stale a session's LastSeen may get before a use
// writes it: the idle timeout needs no finer grain, and the database is
// spared a write per request.
const touchEvery = time.Minute

// tokenBytes is the entropy of session ids and CSRF tokens.
const tokenBytes = 32

// newToken returns tokenBytes random bytes, base64url without padding.
func newToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// wellFormed reports whether s could be a token newToken made. Anything
// else is ignored as if absent, before any lookup.
func wellFormed(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// tokensEqual compares a presented token with the expected one in
// constant time; an empty expected token matches nothing.
func tokensEqual(presented, expected string) bool {
	return expected != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(expected)) == 1
}

// hashID is how a session id is stored: hex SHA-256. The id has 256 bits
// of entropy, so a fast hash is enough to make a stolen table useless.
func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// setCookie sets a session-lifetime cookie (no Max-Age: it dies with the
// browser; the server enforces the real expiry). The login CSRF cookie is
// readable by the page's script, which echoes it in the header; the
// session cookie never is.
func setCookie(w http.ResponseWriter, name, value string, httpOnly bool) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		Secure:   true,
		HttpOnly: httpOnly,
		SameSite: http.SameSiteStrictMode,
	})
}

// clearCookie tells the browser to drop a cookie set by setCookie.
func clearCookie(w http.ResponseWriter, name string, httpOnly bool) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Secure:   true,
		HttpOnly: httpOnly,
		SameSite: http.SameSiteStrictMode,
	})
}

// cookieValue returns the value of r's cookie name if it is well formed.
func cookieValue(r *http.Request, name string) (string, bool) {
	ck, err := r.Cookie(name)
	if err != nil || !wellFormed(ck.Value) {
		return "", false
	}
	return ck.Value, true
}

// crossSite reports whether r was sent by a page of another origin. The
// browser's Sec-Fetch-Site says so directly; "same-site" is refused too,
// because SameSite=Strict cookies travel from a sibling subdomain, and a
// WebSocket handshake (a GET, outside CORS) would let such a page act as
// the user. Without it, an Origin header must name this host. A request
// with neither (an old browser's navigation, a script) is not judged here:
// without the cookie it carries no session anyway.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return false
	case "":
	default:
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || u.Host != r.Host
}

// safeMethod reports whether method changes nothing, so needs no CSRF
// token.
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// errNoSession means the cookie names no live session: unknown, expired,
// signed out, or its user deleted.
var errNoSession = errors.New("no live console session")

// session returns the live session whose id is id, deleting it instead
// when it has expired or its user no longer exists, and records its use.
func (c *Console) session(ctx context.Context, id string) (store.WebSession, error) {
	idHash := hashID(id)
	s, err := c.cfg.Store.GetWebSession(ctx, idHash)
	if errors.Is(err, store.ErrNotFound) {
		return store.WebSession{}, errNoSession
	}
	if err != nil {
		return store.WebSession{}, fmt.Errorf("get console session: %w", err)
	}
	if strings.HasPrefix(s.CSRFToken, "!") {
		// A sign-in still waiting for its code, or a single sign-on
		// under way, is not a session.
		return store.WebSession{}, errNoSession
	}
	now := c.now()
	reason := ""
	switch {
	case !now.Before(s.ExpiresAt):
		reason = "reached its maximum age"
	case now.Sub(s.LastSeen) >= c.cfg.IdleTimeout:
		reason = "idle timeout"
	default:
		exists, err := c.cfg.Users(ctx, s.User)
		if err != nil {
			return store.WebSession{}, fmt.Errorf("look up console session user %q: %w", s.User, err)
		}
		if !exists {
			reason = "its user was deleted"
		}
	}
	if reason != "" {
		if err := c.cfg.Store.DeleteWebSession(ctx, idHash); err != nil {
			return store.WebSession{}, fmt.Errorf("delete ended console session: %w", err)
		}
		c.log.Info("console session ended", "user", s.User, "reason", reason)
		return store.WebSession{}, errNoSession
	}
	if now.Sub(s.LastSeen) >= touchEvery {
		// A failed touch only makes the session end a little early.
		if err := c.cfg.Store.TouchWebSession(ctx, idHash, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			c.log.Warn("record console session use", "user", s.User, "err", err)
		}
	}
	return s, nil
}

// Authenticator returns the authenticator of the browser's API calls: it
// turns the session cookie into the signed-in user, Via "console". Put it
// after the API key authenticator: a request without the cookie is not
// its business (ok=false). A cookie that names no live session is 401; a
// cross-site request, or a state change without the session's CSRF token,
// is 403 with code "csrf". The request's context then carries the token
// (api.CSRFToken), so that GET /api/v1/me can hand it to the console.
func (c *Console) Authenticator() api.Authenticator {
	return sessionAuth{c: c}
}

type sessionAuth struct{ c *Console }

// Authenticate implements api.Authenticator.
func (a sessionAuth) Authenticate(r *http.Request) (api.Principal, bool, error) {
	c := a.c
	if _, err := r.Cookie(sessionCookie); err != nil {
		return api.Principal{}, false, nil
	}
	if crossSite(r) {
		return api.Principal{}, true, &api.AuthError{Status: http.StatusForbidden, Code: codeCSRF,
			Message: "cross-site request refused"}
	}
	id, ok := cookieValue(r, sessionCookie)
	if !ok {
		return api.Principal{}, true, errSignInAgain
	}
	s, err := c.session(r.Context(), id)
	if errors.Is(err, errNoSession) {
		return api.Principal{}, true, errSignInAgain
	}
	if err != nil {
		c.log.Error("console session authentication failed", "err", err)
		return api.Principal{}, true, &api.AuthError{Status: http.StatusInternalServerError, Code: "internal",
			Message: "internal error; the gateway log has the detail"}
	}
	if !safeMethod(r.Method) && !tokensEqual(r.Header.Get(csrfHeader), s.CSRFToken) {
		return api.Principal{}, true, &api.AuthError{Status: http.StatusForbidden, Code: codeCSRF,
			Message: "missing or wrong " + csrfHeader + " header: reload the console"}
	}
	// The interface returns no request, and api.HTTPS serves the request
	// it passed in: the token rides in its context from here.
	*r = *r.WithContext(api.WithCSRFToken(r.Context(), s.CSRFToken))
	return api.Principal{Name: s.User, Via: "console"}, true, nil
}

// errSignInAgain answers a session cookie that opens nothing.
var errSignInAgain = &api.AuthError{Status: http.StatusUnauthorized, Code: "unauthorized",
	Message: "console session expired or signed out: sign in again"}
