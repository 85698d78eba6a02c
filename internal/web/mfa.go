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
	"sync"
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

// Bounds of pending sign-ins.
const (
	pendingTTL = 5 * time.Minute
	// maxPending bounds the table; a pending entry needs a right password,
	// which the login rate limits already bound, so this is a backstop.
	maxPending = 10000
)

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
}

// pendingLogins is the table of pending sign-ins, keyed by the token's
// hash so that a memory dump does not hand out live tokens either.
type pendingLogins struct {
	mu sync.Mutex
	m  map[string]pendingLogin
}

func (p *pendingLogins) add(token string, pl pendingLogin, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]pendingLogin{}
	}
	if len(p.m) >= maxPending {
		p.sweepLocked(now)
		if len(p.m) >= maxPending {
			return false
		}
	}
	p.m[hashID(token)] = pl
	return true
}

// take removes and returns the pending sign-in of token: one use, whatever
// the outcome of the code.
func (p *pendingLogins) take(token string) (pendingLogin, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := hashID(token)
	pl, ok := p.m[h]
	delete(p.m, h)
	return pl, ok
}

func (p *pendingLogins) sweep(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepLocked(now)
}

func (p *pendingLogins) sweepLocked(now time.Time) {
	for k, pl := range p.m {
		if !now.Before(pl.expires) {
			delete(p.m, k)
		}
	}
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
	if !c.pending.add(tok, pendingLogin{user: user, source: sourceKey(r.RemoteAddr), expires: now.Add(pendingTTL)}, now) {
		writeError(w, http.StatusServiceUnavailable, "too many sign-ins waiting for a code: try again in a minute")
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
	pl, ok := c.pending.take(req.Token)
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
	resp, err := c.startSession(w, r, pl.user, now)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
