package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// MeResponse is the answer of GET /api/v1/me.
type MeResponse struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
	Via   string   `json:"via"`
	KeyID string   `json:"key_id,omitempty"`
	// CSRFToken is the console session's token, to send as X-CSRF-Token
	// on every state change (console sessions only).
	CSRFToken string `json:"csrf_token,omitempty"`
	// SSHPort is the port of the gateway's SSH front, for the console's
	// "how to connect" lines (the host is the one the browser used);
	// 0 when unknown.
	SSHPort int `json:"ssh_port,omitempty"`
}

func (a *api) me(w http.ResponseWriter, r *http.Request) error {
	p := caller(r)
	roles := p.Roles
	if p.superuser() {
		roles = []string{resource.RoleAdmin}
	}
	writeJSON(w, http.StatusOK, MeResponse{Name: p.Name, Roles: orEmpty(roles), Via: p.Via, KeyID: p.KeyID,
		CSRFToken: CSRFToken(r.Context()), SSHPort: a.sshPort()})
	return nil
}

// PasswordRequest is the body of POST /api/v1/users/{name}/password.
type PasswordRequest struct {
	Password string `json:"password"`
	// CurrentPassword is required when users change their own password
	// (admins and the socket set anyone's without it).
	CurrentPassword string `json:"current_password,omitempty"`
}

// MinPasswordLen is the shortest local password accepted.
const MinPasswordLen = 12

func (a *api) setPassword(w http.ResponseWriter, r *http.Request) error {
	p := caller(r)
	name := r.PathValue("name")
	var req PasswordRequest
	if err := decodeJSONRequest(w, r, 8<<10, &req); err != nil {
		return err
	}
	if !p.admin() && p.Name != name {
		return clientError(http.StatusForbidden, "%s may only change its own password", p.actor())
	}
	if _, ok := a.inv.Snapshot().UserRoles(name); !ok {
		return clientError(http.StatusNotFound, "no user %q", name)
	}
	if n := len([]rune(req.Password)); n < MinPasswordLen || len(req.Password) > password.MaxLen {
		return clientError(http.StatusBadRequest, "field password: want %d to %d characters", MinPasswordLen, password.MaxLen)
	}
	// Users changing their own password prove they know it, admins
	// included: a stolen console session or API key must not turn into
	// a password, which outlives both. Admins set other users' passwords
	// (and the socket anyone's) without.
	if !p.superuser() && p.Name == name {
		if err := a.checkCurrentPassword(r.Context(), name, req.CurrentPassword); err != nil {
			return err
		}
	}
	hash, err := password.Hash(req.Password)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if err := a.store.SetPassword(r.Context(), name, hash, a.now()); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	a.accessGen.Add(1)
	// Everyone signed in with the old password is signed out.
	if err := a.store.DeleteUserWebSessions(r.Context(), name); err != nil {
		a.log.Warn("password changed but console sessions not ended", "user", name, "err", err)
	}
	_ = a.audit.Write(r.Context(), store.AuditEvent{Type: audit.PasswordChange, Outcome: audit.Success,
		User: p.actor(), Source: source(r), Message: fmt.Sprintf("password of %s set", name),
		Detail: map[string]any{"user": name}})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkCurrentPassword verifies a user's current password, rate limited
// per user and bounded in concurrency like the console's sign-in: each
// check costs argon2id's memory and is a guess at the password.
func (a *api) checkCurrentPassword(ctx context.Context, name, pw string) error {
	if !a.pwGuesses.allow(name) {
		return clientError(http.StatusTooManyRequests, "too many wrong current passwords for %s: wait and try again", name)
	}
	select {
	case a.pwSlots <- struct{}{}:
		defer func() { <-a.pwSlots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	old, err := a.store.PasswordHash(ctx, name)
	ok := false
	if err == nil {
		ok, _ = password.Verify(old, pw)
	} else {
		_, _ = password.Verify(password.Dummy(), pw) // same cost either way
	}
	if !ok {
		return clientError(http.StatusForbidden, "field current_password: does not match")
	}
	a.pwGuesses.forgive(name)
	return nil
}

// guessLimiter allows a few failures per key, then one every interval.
// It holds at most maxKeys keys; past that every new key shares one
// budget, so that a flood of names cannot buy fresh attempts.
type guessLimiter struct {
	mu      sync.Mutex
	byKey   map[string]*rate.Limiter
	shared  *rate.Limiter
	every   time.Duration
	burst   int
	maxKeys int
}

func newGuessLimiter(every time.Duration, burst, maxKeys int) *guessLimiter {
	return &guessLimiter{byKey: map[string]*rate.Limiter{}, shared: rate.NewLimiter(rate.Every(every), burst),
		every: every, burst: burst, maxKeys: maxKeys}
}

// allow takes one attempt from key's budget.
func (g *guessLimiter) allow(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.byKey[key]
	if !ok {
		if len(g.byKey) >= g.maxKeys {
			return g.shared.Allow()
		}
		l = rate.NewLimiter(rate.Every(g.every), g.burst)
		g.byKey[key] = l
	}
	return l.Allow()
}

// forgive forgets key's failures after a success.
func (g *guessLimiter) forgive(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.byKey, key)
}

// sshPort is the SSH front's bound port, or 0.
func (a *api) sshPort() int {
	if a.sshAddr == nil {
		return 0
	}
	_, port, err := net.SplitHostPort(a.sshAddr())
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return 0
	}
	return n
}
