package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/store"
)

// Second-factor sign-in: after the password, a user who must present a
// code gets a pending token instead of a session, and trades it with a code
// at POST /ui/login/mfa. Pending sign-ins live in this gateway's memory: the
// two requests are seconds apart and come from one browser, and a restart
// costs only a new password entry.

// pendingTTL is how long a right password waits for its code. Pending
// sign-ins need a right password, which the login rate limits bound, and
// expired ones go with the expired sessions (Console.Run).
const pendingTTL = 5 * time.Minute

// MFAChallenge is the answer of POST /ui/login when the password is right
// and a verification code must follow: no session yet, a token to send
// with the code to POST /ui/login/mfa.
type MFAChallenge struct {
	MFARequired bool   `json:"mfa_required"`
	Token       string `json:"token"`
}

// mfaLoginRequest is the body of POST /ui/login/mfa.
type mfaLoginRequest struct {
	Token string `json:"token"`
	Code  string `json:"code"`
}

// pendingLogin is a sign-in waiting for its code: bound to the user and
// the source network that gave the password, used at most once.
type pendingLogin struct {
	user    string
	source  string // sourceKey of the address that gave the password
	expires time.Time
	via     string // how the first step was passed: "console" or "oidc"
}

// pendingMarker is the CSRF token of a pending sign-in's row: pending
// sign-ins are kept in the web sessions table (so that the code step may
// reach any gateway behind a load balancer), and a row with this marker
// is never a session (Console.session refuses every marker: they start
// with '!', which no base64url CSRF token does). pendingSSOMarker is the
// same after single sign-on instead of a password.
const (
	pendingMarker    = "!mfa-pending"
	pendingSSOMarker = "!mfa-pending-oidc"
)

// pendingID is the row id of a pending token, in its own hash domain: a
// token sent as a session cookie never finds its row.
func pendingID(token string) string { return hashID("mfa-pending\x00" + token) }

// addPending stores a pending sign-in for token.
func (c *Console) addPending(ctx context.Context, token string, pl pendingLogin, now time.Time) error {
	marker := pendingMarker
	if pl.via == "oidc" {
		marker = pendingSSOMarker
	}
	return c.cfg.Store.CreateWebSession(ctx, store.WebSession{IDHash: pendingID(token), User: pl.user,
		CSRFToken: marker, Source: pl.source, CreatedAt: now, LastSeen: now, ExpiresAt: pl.expires})
}

// takePending removes and returns the pending sign-in of token: one use,
// whatever the outcome of the code (the code itself is single-use across
// gateways: the store refuses a time step twice).
func (c *Console) takePending(ctx context.Context, token string) (pendingLogin, bool) {
	if token == "" {
		return pendingLogin{}, false
	}
	id := pendingID(token)
	ws, err := c.cfg.Store.GetWebSession(ctx, id)
	if err != nil || (ws.CSRFToken != pendingMarker && ws.CSRFToken != pendingSSOMarker) {
		return pendingLogin{}, false
	}
	if err := c.cfg.Store.DeleteWebSession(ctx, id); err != nil {
		return pendingLogin{}, false
	}
	via := "console"
	if ws.CSRFToken == pendingSSOMarker {
		via = "oidc"
	}
	return pendingLogin{user: ws.User, source: ws.Source, expires: ws.ExpiresAt, via: via}, true
}

// needsCode reports whether user must present a verification code at
// sign-in: the User says mfa: required, or the user enrolled a second
// factor (an enrolled user expects their console to ask it). It fails
// closed: an error is answered as an error, never as "no code needed".
func (c *Console) needsCode(ctx context.Context, user string) (required bool, st mfa.Status, err error) {
	if c.cfg.RequireMFA != nil {
		if required, err = c.cfg.RequireMFA(ctx, user); err != nil {
			return false, st, fmt.Errorf("console login: MFA requirement of %q: %w", user, err)
		}
	}
	if c.cfg.MFA == nil {
		return required, st, nil
	}
	if st, err = c.cfg.MFA.Status(ctx, user); err != nil {
		return false, st, fmt.Errorf("console login: %w", err)
	}
	return required || st.State == store.MFAActive, st, nil
}

// challenge answers a right password of a user who must present a code:
// refused with what to do when they have no active second factor, else a
// pending token. It reports whether it answered.
func (c *Console) challenge(w http.ResponseWriter, r *http.Request, user string, now time.Time) bool {
	ctx := r.Context()
	need, st, err := c.needsCode(ctx, user)
	if err != nil {
		c.internalError(w, r, err)
		return true
	}
	if !need {
		return false
	}
	if c.cfg.MFA == nil || st.State != store.MFAActive {
		c.audit(ctx, store.AuditEvent{Type: EventLoginFailure, Outcome: audit.Deny, User: user, Source: r.RemoteAddr,
			Message: "console sign-in refused: a verification code is required and no second factor is enrolled",
			Detail:  map[string]any{"reason": "mfa_not_enrolled"}})
		writeErrorCode(w, http.StatusForbidden, "mfa_not_enrolled", fmt.Sprintf(
			"%s must present a verification code but has no second factor enrolled: ask an admin to run `portcullis mfa enroll %s`", user, user))
		return true
	}
	tok, err := newToken()
	if err != nil {
		c.internalError(w, r, err)
		return true
	}
	if err := c.addPending(r.Context(), tok, pendingLogin{user: user, source: sourceKey(r.RemoteAddr), expires: now.Add(pendingTTL), via: "console"}, now); err != nil {
		c.internalError(w, r, err)
		return true
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, MFAChallenge{MFARequired: true, Token: tok})
	return true
}

// serveLoginMFA answers POST /ui/login/mfa: the pending token of a right
// password and a code. The same checks as the password step guard it
// (same origin, JSON, the login CSRF token); the token is used once,
// must come from the network that gave the password, and expires after
// five minutes. A right code starts the session as a password alone
// would have.
func (c *Console) serveLoginMFA(w http.ResponseWriter, r *http.Request) {
	if crossSite(r) {
		writeErrorCode(w, http.StatusForbidden, codeCSRF, "cross-site request refused")
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		writeError(w, http.StatusBadRequest, "Content-Type must be application/json")
		return
	}
	tok, ok := cookieValue(r, loginCSRFCookie)
	if !ok || !tokensEqual(r.Header.Get(csrfHeader), tok) {
		writeErrorCode(w, http.StatusForbidden, codeCSRF,
			"missing or wrong "+csrfHeader+" header: reload the page and sign in again")
		return
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxLoginBody))
	dec.DisallowUnknownFields()
	var req mfaLoginRequest
	if err := dec.Decode(&req); err != nil || req.Token == "" || req.Code == "" {
		writeError(w, http.StatusBadRequest, `body: want {"token": ..., "code": ...}`)
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "body: want one JSON object and nothing after it")
		return
	}
	ctx := r.Context()
	now := c.now()
	pl, ok := c.takePending(ctx, req.Token)
	if !ok || !now.Before(pl.expires) || pl.source != sourceKey(r.RemoteAddr) || c.cfg.MFA == nil {
		writeErrorCode(w, http.StatusUnauthorized, "mfa_expired", "the sign-in expired or was already used: enter your password again")
		return
	}
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		addr = ap.Addr().Unmap()
	}
	_, err := c.cfg.MFA.Verify(ctx, mfa.Attempt{User: pl.user, Code: req.Code, Addr: addr, Source: r.RemoteAddr, Via: "console"})
	switch {
	case errors.Is(err, mfa.ErrInvalid):
		writeErrorCode(w, http.StatusUnauthorized, "mfa_invalid", "wrong or already used code: enter your password again")
		return
	case errors.Is(err, mfa.ErrLocked):
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusTooManyRequests, err.Error())
		return
	case errors.Is(err, mfa.ErrNotEnrolled):
		writeErrorCode(w, http.StatusForbidden, "mfa_not_enrolled", "no second factor is enrolled any more: ask an admin")
		return
	case err != nil:
		c.internalError(w, r, err)
		return
	}
	// The user may have been deleted while the code was typed.
	if exists, err := c.cfg.Users(ctx, pl.user); err != nil || !exists {
		writeErrorCode(w, http.StatusUnauthorized, "mfa_expired", "the sign-in expired or was already used: enter your password again")
		return
	}
	resp, err := c.startSession(w, r, pl.user, now, pl.via)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
