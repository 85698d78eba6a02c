package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/sso"
	"github.com/portcullis/portcullis/internal/store"
)

// Single sign-on, in order:
//
//  1. GET /ui/oidc/login makes a random flow secret, stores a one-use row
//     for it in the web sessions table (so that the callback may reach any
//     gateway), gives the secret to the browser in a cookie, and redirects
//     to the provider with the state, nonce and PKCE challenge derived
//     from it (sso.NewFlow).
//  2. The provider sends the browser back to GET /ui/oidc/callback with a
//     code and the state. The cookie's secret must derive that state, and
//     its row must still exist: the row is deleted, so the callback works
//     once. The code is exchanged with the verifier and the ID token
//     verified, nonce included (sso.Provider.Exchange).
//  3. The account's linked User is signed in exactly as a password would
//     have, the verification code step included, and the browser goes to
//     /ui/.
//
// What goes wrong is shown by the console: the callback redirects to
// /ui/#sso_error=CODE, one of the ssoErr codes, and the gateway log has
// the detail.

// ssoCookie holds the flow secret between the two steps. It is SameSite=Lax
// because the callback is a top-level navigation from the provider's site,
// on which a Strict cookie is not sent; it opens nothing by itself (the
// provider's code is needed too) and dies after ssoFlowTTL.
const ssoCookie = "__Host-pc_sso"

// ssoFlowTTL bounds the time spent at the provider's login page.
const ssoFlowTTL = 10 * time.Minute

// ssoFlowMarker is the CSRF token of a flow's row: it is no session.
// ssoFlowUser stands in its user column, which the store requires: no
// user name starts with '!', so no user's sign-out or deletion touches it.
const (
	ssoFlowMarker = "!oidc-flow"
	ssoFlowUser   = "!sso"
)

// ssoFlowID is the row id of a flow secret, in its own hash domain: the
// secret sent as a session cookie or pending token finds nothing.
func ssoFlowID(secret string) string { return hashID("oidc-flow\x00" + secret) }

// Codes of /ui/#sso_error=, which the console turns into sentences.
const (
	ssoErrUnavailable = "unavailable" // the provider cannot be reached
	ssoErrExpired     = "expired"     // no flow, a used one, or a wrong state
	ssoErrDenied      = "denied"      // the provider said no (the person cancelled)
	ssoErrRejected    = "rejected"    // the code or the ID token failed a check
	ssoErrNoUser      = "no_user"     // no User is linked to the account
	ssoErrNoMFA       = "mfa_not_enrolled"
	ssoErrWrongUser   = "wrong_user" // an SSH sign-in finished by another user
	ssoErrInternal    = "internal"
)

// serveSSOLogin answers GET /ui/oidc/login with a redirect to the
// provider.
func (c *Console) serveSSOLogin(w http.ResponseWriter, r *http.Request) {
	c.startSSOFlow(w, r, ssoFlowMarker)
}

// startSSOFlow stores a flow row with marker (ssoFlowMarker, or an SSH
// sign-in's, which names its code) and redirects to the provider.
func (c *Console) startSSOFlow(w http.ResponseWriter, r *http.Request, marker string) {
	ctx := r.Context()
	now := c.now()
	secret, err := newToken()
	if err != nil {
		c.ssoFail(w, r, "", ssoErrInternal, err)
		return
	}
	authURL, err := c.cfg.SSO.AuthURL(ctx, sso.NewFlow(secret))
	if err != nil {
		c.ssoFail(w, r, "", ssoErrUnavailable, err)
		return
	}
	if err := c.cfg.Store.CreateWebSession(ctx, store.WebSession{IDHash: ssoFlowID(secret), User: ssoFlowUser, CSRFToken: marker,
		Source: sourceKey(r.RemoteAddr), CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(ssoFlowTTL)}); err != nil {
		c.ssoFail(w, r, "", ssoErrInternal, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: secret, Path: "/", MaxAge: int(ssoFlowTTL / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, authURL, http.StatusFound)
}

// serveSSOCallback answers GET /ui/oidc/callback: see the comment at the
// top of this file.
func (c *Console) serveSSOCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := c.now()
	// The cookie is spent whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	secret, ok := cookieValue(r, ssoCookie)
	if !ok {
		c.ssoFail(w, r, "", ssoErrExpired, errors.New("no single sign-on cookie: the flow expired or was started in another browser"))
		return
	}
	flow := sso.NewFlow(secret)
	if !tokensEqual(q.Get("state"), flow.State) {
		c.ssoFail(w, r, "", ssoErrExpired, errors.New("the state does not match this browser's flow"))
		return
	}
	marker, ok := c.takeSSOFlow(ctx, secret, now)
	if !ok {
		c.ssoFail(w, r, "", ssoErrExpired, errors.New("the flow expired or was already used"))
		return
	}
	if e := q.Get("error"); e != "" {
		c.ssoFail(w, r, "", ssoErrDenied, errors.New("the provider answered "+e+": "+q.Get("error_description")))
		return
	}
	id, err := c.cfg.SSO.Exchange(ctx, flow, q.Get("code"))
	switch {
	case errors.Is(err, sso.ErrUnavailable):
		c.ssoFail(w, r, "", ssoErrUnavailable, err)
		return
	case err != nil:
		c.ssoFail(w, r, "", ssoErrRejected, err)
		return
	}
	user, err := c.cfg.SSOUser(ctx, id)
	switch {
	case errors.Is(err, sso.ErrNoUser):
		c.ssoFail(w, r, "", ssoErrNoUser, err)
		return
	case err != nil:
		c.ssoFail(w, r, "", ssoErrInternal, err)
		return
	}
	if exists, err := c.cfg.Users(ctx, user); err != nil || !exists {
		c.ssoFail(w, r, "", ssoErrInternal, errors.Join(errors.New("the signed-in user is not known yet"), err))
		return
	}
	if codeID, ok := strings.CutPrefix(marker, sshFlowMarkerPrefix); ok {
		c.finishSSHSignIn(w, r, codeID, user, now)
		return
	}
	// A user who must present a code gets no session yet: the console
	// asks it with the pending token, as after a password.
	need, st, err := c.needsCode(ctx, user)
	if err != nil {
		c.ssoFail(w, r, user, ssoErrInternal, err)
		return
	}
	if need {
		if c.cfg.MFA == nil || st.State != store.MFAActive {
			c.ssoFail(w, r, user, ssoErrNoMFA, errors.New("a verification code is required and no second factor is enrolled"))
			return
		}
		tok, err := newToken()
		if err != nil {
			c.ssoFail(w, r, user, ssoErrInternal, err)
			return
		}
		if err := c.addPending(ctx, tok, pendingLogin{user: user, source: sourceKey(r.RemoteAddr),
			expires: now.Add(pendingTTL), via: "oidc"}, now); err != nil {
			c.ssoFail(w, r, user, ssoErrInternal, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/ui/#mfa="+url.QueryEscape(tok), http.StatusFound)
		return
	}
	if _, err := c.startSession(w, r, user, now, "oidc"); err != nil {
		c.ssoFail(w, r, user, ssoErrInternal, err)
		return
	}
	// The console reads its CSRF token from GET /api/v1/me.
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/ui/", http.StatusFound)
}

// takeSSOFlow deletes the row of a flow secret and returns its marker,
// reporting whether it was there and unexpired: one use, on any gateway sharing the store. Two
// callbacks racing may both find the row (the store's delete does not
// say whether it deleted anything); the provider then redeems the one
// code once (RFC 6749 4.1.2), so only one of them gets an ID token.
func (c *Console) takeSSOFlow(ctx context.Context, secret string, now time.Time) (string, bool) {
	id := ssoFlowID(secret)
	ws, err := c.cfg.Store.GetWebSession(ctx, id)
	if err != nil || ws.User != ssoFlowUser || (ws.CSRFToken != ssoFlowMarker && !strings.HasPrefix(ws.CSRFToken, sshFlowMarkerPrefix)) {
		return "", false
	}
	if err := c.cfg.Store.DeleteWebSession(ctx, id); err != nil {
		return "", false
	}
	return ws.CSRFToken, now.Before(ws.ExpiresAt)
}

// ssoFail audits a refused single sign-on, logs its cause and sends the
// browser to the console with the code of what went wrong. user is the
// account's User when known.
func (c *Console) ssoFail(w http.ResponseWriter, r *http.Request, user, code string, err error) {
	ctx := r.Context()
	if code == ssoErrInternal {
		c.log.Error("single sign-on failed", "user", user, "err", err)
	} else {
		c.log.Info("single sign-on refused", "reason", code, "user", user, "err", err)
	}
	c.audit(ctx, store.AuditEvent{Type: EventLoginFailure, Outcome: audit.Deny, User: user, Source: r.RemoteAddr,
		Message: "console single sign-on refused", Detail: map[string]any{"reason": "sso_" + code, "via": "oidc"}})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/ui/#sso_error="+code, http.StatusFound)
}
