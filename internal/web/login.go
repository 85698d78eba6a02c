package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/directory"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/store"
)

// Login input bounds: a login is cheap to refuse.
const (
	maxLoginBody = 4 << 10
	maxUserName  = 256
)

// badCredentials is the one answer to an unknown user, a user without a
// password and a wrong password, so that it reveals nothing about which
// names exist.
const badCredentials = "wrong user name or password"

// loginRequest is the body of POST /ui/login.
type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// LoginResponse is the answer of a successful POST /ui/login. CSRFToken
// goes in the X-CSRF-Token header of every state-changing call of the
// session.
type LoginResponse struct {
	Name      string   `json:"name"`
	Roles     []string `json:"roles"`
	CSRFToken string   `json:"csrf_token"`
}

// LoginCSRFResponse is the answer of GET /ui/login-csrf: the value of the
// login CSRF cookie, to send as X-CSRF-Token with POST /ui/login.
type LoginCSRFResponse struct {
	CSRFToken string `json:"csrf_token"`
	// SSO says single sign-on is configured: the login page offers
	// "Sign in with SSO", a link to GET /ui/oidc/login.
	SSO bool `json:"sso,omitempty"`
}

// ensureLoginCSRF returns the browser's login CSRF token, setting a new
// cookie when it has none. An existing one is kept, so that two tabs do not
// invalidate each other's form.
func (c *Console) ensureLoginCSRF(w http.ResponseWriter, r *http.Request) (string, error) {
	if tok, ok := cookieValue(r, loginCSRFCookie); ok {
		return tok, nil
	}
	tok, err := newToken()
	if err != nil {
		return "", fmt.Errorf("login CSRF token: %w", err)
	}
	setCookie(w, loginCSRFCookie, tok, false)
	return tok, nil
}

// serveLoginCSRF answers GET /ui/login-csrf.
func (c *Console) serveLoginCSRF(w http.ResponseWriter, r *http.Request) {
	tok, err := c.ensureLoginCSRF(w, r)
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, LoginCSRFResponse{CSRFToken: tok, SSO: c.cfg.SSO != nil})
}

// serveLogin answers POST /ui/login. In order: the request must be
// same-origin JSON carrying the login CSRF token; the source and the user
// name must have attempts left; the password is verified (against a dummy
// hash when the user has none, so that timing tells nothing); a success
// creates a session under a new id and answers the user and the session's
// CSRF token.
func (c *Console) serveLogin(w http.ResponseWriter, r *http.Request) {
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
	req, err := decodeLogin(w, r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("login body is larger than %d bytes", mbe.Limit))
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	ctx := r.Context()
	now := c.now()
	source := sourceKey(r.RemoteAddr)
	refundSource, wait := c.bySource.attempt(source, now)
	if refundSource == nil {
		c.log.Debug("console login rate limited", "source", r.RemoteAddr, "user", req.User)
		tooManyRequests(w, wait)
		return
	}
	pair := userSourceKey(req.User, source)
	refundPair, wait := c.byUserSource.attempt(pair, now)
	if refundPair == nil {
		refundSource()
		c.log.Debug("console login rate limited", "source", r.RemoteAddr, "user", req.User)
		tooManyRequests(w, wait)
		return
	}
	// The user's own budget, spent from every source, only slows: a
	// stranger's failures must not keep the user out.
	refundUser, wait := c.byUser.attempt(req.User, now)
	userCharged := refundUser != nil
	if !userCharged {
		refundUser = func() {}
		c.log.Debug("console login slowed", "source", r.RemoteAddr, "user", req.User, "delay", min(wait, loginSlowMax))
		c.sleep(ctx, min(wait, loginSlowMax))
		if ctx.Err() != nil {
			refundSource()
			refundPair()
			return
		}
	}

	ok, err = c.checkPassword(ctx, req.User, req.Password)
	if err == nil && !ok && c.cfg.DirectoryPassword != nil {
		ok, err = c.cfg.DirectoryPassword(ctx, req.User, req.Password)
		if errors.Is(err, directory.ErrUnavailable) {
			refundSource()
			refundPair()
			refundUser()
			c.log.Warn("console login: directory unavailable", "user", req.User, "err", err)
			writeError(w, http.StatusServiceUnavailable, "the directory service is unavailable; try again later")
			return
		}
	}
	if err != nil {
		refundSource()
		refundPair()
		refundUser()
		c.internalError(w, r, err)
		return
	}
	if !ok {
		c.loginFailed(ctx, r, req.User, source, now, userCharged)
		writeError(w, http.StatusUnauthorized, badCredentials)
		return
	}
	refundSource()
	refundPair()
	refundUser()

	// A user who must present a code gets no session yet.
	if c.challenge(w, r, req.User, now) {
		return
	}
	resp, err := c.startSession(w, r, req.User, now, "console")
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// decodeLogin reads and checks the login body.
func decodeLogin(w http.ResponseWriter, r *http.Request) (loginRequest, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxLoginBody))
	dec.DisallowUnknownFields()
	var req loginRequest
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return req, err
		}
		return req, fmt.Errorf("login body: want {\"user\": ..., \"password\": ...}: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, errors.New("login body: want one JSON object and nothing after it")
	}
	switch {
	case req.User == "" || req.Password == "":
		return req, errors.New("login body: user and password are required")
	case len(req.User) > maxUserName:
		return req, fmt.Errorf("login body: user name longer than %d bytes", maxUserName)
	case len(req.Password) > password.MaxLen:
		return req, fmt.Errorf("login body: password longer than %d bytes", password.MaxLen)
	}
	return req, nil
}

// checkPassword reports whether pw is user's password. Every path runs
// one argon2id verification, against a dummy hash when the user does not
// exist or has no password, so that the answer's timing does not tell
// those apart from a wrong password.
func (c *Console) checkPassword(ctx context.Context, user, pw string) (bool, error) {
	exists, err := c.cfg.Users(ctx, user)
	if err != nil {
		return false, fmt.Errorf("console login: look up user %q: %w", user, err)
	}
	// The hash is read whether or not the user exists, so that both cases
	// cost the same queries. Deleting a user removes its hash (the API
	// does), and one left behind would still open nothing while the user
	// does not exist.
	encoded, err := c.cfg.Store.PasswordHash(ctx, user)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("console login: password hash of %q: %w", user, err)
	}
	if !exists {
		encoded = ""
	}
	hasPassword := encoded != ""
	if !hasPassword {
		encoded = password.Dummy()
	}
	select {
	case c.verifySlots <- struct{}{}:
	case <-ctx.Done():
		return false, fmt.Errorf("console login: %w", ctx.Err())
	}
	ok, err := password.Verify(encoded, pw)
	<-c.verifySlots
	if errors.Is(err, password.ErrMalformed) {
		// A damaged hash is the admin's to fix (user passwd); the user
		// gets the ordinary refusal, which says nothing of it.
		c.log.Error("console login: stored password hash is damaged: set a new one with `portcullis user passwd`",
			"user", user, "err", err)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("console login: verify password of %q: %w", user, err)
	}
	return ok && hasPassword, nil
}

// loginFailed audits a failed login, and a lockout when this failure used
// the last attempt of its source or (user name, source), or a slowdown when
// it used the last of the user name's (userCharged: it took one; slowed
// attempts take none and are not announced again).
//
// The typed name is recorded only when such a user exists: people type
// their password into the name box, and the trail must not keep it.
func (c *Console) loginFailed(ctx context.Context, r *http.Request, user, source string, now time.Time, userCharged bool) {
	typed := user
	if exists, err := c.cfg.Users(ctx, user); err != nil || !exists {
		typed = ""
	}
	detail := map[string]any{"reason": "bad_credentials"}
	if typed == "" {
		detail["unknown_user"] = true
	}
	c.audit(ctx, store.AuditEvent{Type: EventLoginFailure, Outcome: audit.Deny, User: typed, Source: r.RemoteAddr,
		Message: "console sign-in refused: wrong user name or password", Detail: detail})
	for _, l := range []struct {
		lim   *limiter
		key   string
		which string
		what  string
	}{
		{c.bySource, source, "source", "locked out: too many failures from this source"},
		{c.byUserSource, userSourceKey(user, source), "user_source", "locked out: too many failures for this user from this source"},
		{c.byUser, user, "user", "slowed: too many failures for this user (other sources wait, they are not refused)"},
	} {
		if l.which == "user" && !userCharged {
			continue
		}
		if l.lim.exhausted(l.key, now) {
			key := l.key
			switch l.which {
			case "user":
				key = typed
			case "user_source":
				key = typed + " from " + source
			}
			c.audit(ctx, store.AuditEvent{Type: EventLoginFailure, Outcome: audit.Deny, User: typed, Source: r.RemoteAddr,
				Message: "console sign-in " + l.what,
				Detail: map[string]any{"reason": "rate_limited", "limit": l.which, "key": key,
					"retry_every_seconds": int(loginEvery / time.Second)}})
		}
	}
}

// startSession creates a session for user under a new random id, sets its
// cookie, and deletes the session the browser held before, if any: a
// login never keeps an id that existed before it (session fixation). via
// says how the user proved who they are ("console" for a password,
// "oidc" for single sign-on) in the audit trail.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, user string, now time.Time, via string) (LoginResponse, error) {
	ctx := r.Context()
	id, err := newToken()
	if err != nil {
		return LoginResponse{}, fmt.Errorf("console session id: %w", err)
	}
	csrf, err := newToken()
	if err != nil {
		return LoginResponse{}, fmt.Errorf("console session CSRF token: %w", err)
	}
	s := store.WebSession{IDHash: hashID(id), User: user, CSRFToken: csrf, Source: r.RemoteAddr,
		CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(c.cfg.MaxAge)}
	if err := c.cfg.Store.CreateWebSession(ctx, s); err != nil {
		return LoginResponse{}, fmt.Errorf("create console session for %q: %w", user, err)
	}
	// The audit trail is written before the user gets in; without it the
	// session is dropped (fail closed, as SSH sessions do).
	if err := c.cfg.Audit.Write(ctx, store.AuditEvent{Type: EventLogin, Outcome: audit.Success, User: user,
		Source: r.RemoteAddr, Message: "console sign-in", Detail: map[string]any{"via": via}}); err != nil {
		if derr := c.cfg.Store.DeleteWebSession(context.WithoutCancel(ctx), s.IDHash); derr != nil {
			c.log.Error("delete unaudited console session", "user", user, "err", derr)
		}
		return LoginResponse{}, fmt.Errorf("audit console sign-in of %q: %w", user, err)
	}
	if old, ok := cookieValue(r, sessionCookie); ok {
		if err := c.cfg.Store.DeleteWebSession(ctx, hashID(old)); err != nil {
			c.log.Warn("delete the console session a sign-in replaced", "err", err)
		}
	}
	setCookie(w, sessionCookie, id, true)

	roles := []string{}
	if c.cfg.Roles != nil {
		rs, err := c.cfg.Roles(ctx, user)
		if err != nil {
			// The console reads the roles from GET /api/v1/me as well; an
			// error here does not undo the sign-in.
			c.log.Warn("roles of a signed-in console user", "user", user, "err", err)
		} else if rs != nil {
			roles = rs
		}
	}
	return LoginResponse{Name: user, Roles: roles, CSRFToken: csrf}, nil
}

// serveLogout answers POST /ui/logout: it deletes the session and clears
// its cookie. A missing or dead session is already signed out (204); a
// live one needs its CSRF token, so that another site cannot sign the user
// out.
func (c *Console) serveLogout(w http.ResponseWriter, r *http.Request) {
	if crossSite(r) {
		writeErrorCode(w, http.StatusForbidden, codeCSRF, "cross-site request refused")
		return
	}
	ctx := r.Context()
	id, ok := cookieValue(r, sessionCookie)
	if !ok {
		clearCookie(w, sessionCookie, true)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s, err := c.session(ctx, id)
	if errors.Is(err, errNoSession) {
		clearCookie(w, sessionCookie, true)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	if !tokensEqual(r.Header.Get(csrfHeader), s.CSRFToken) {
		writeErrorCode(w, http.StatusForbidden, codeCSRF, "missing or wrong "+csrfHeader+" header: reload the console")
		return
	}
	if err := c.cfg.Store.DeleteWebSession(ctx, s.IDHash); err != nil {
		c.internalError(w, r, fmt.Errorf("delete console session: %w", err))
		return
	}
	c.audit(ctx, store.AuditEvent{Type: EventLogout, Outcome: audit.Success, User: s.User, Source: r.RemoteAddr,
		Message: "console sign-out"})
	clearCookie(w, sessionCookie, true)
	w.WriteHeader(http.StatusNoContent)
}

// audit writes ev; a failure is already logged by the audit log, and a
// refusal or sign-out goes ahead without it.
func (c *Console) audit(ctx context.Context, ev store.AuditEvent) {
	_ = c.cfg.Audit.Write(ctx, ev)
}
