package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
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
}

func (a *api) me(w http.ResponseWriter, r *http.Request) error {
	p := caller(r)
	roles := p.Roles
	if p.superuser() {
		roles = []string{resource.RoleAdmin}
	}
	writeJSON(w, http.StatusOK, MeResponse{Name: p.Name, Roles: orEmpty(roles), Via: p.Via, KeyID: p.KeyID,
		CSRFToken: CSRFToken(r.Context())})
	return nil
}

// CreateAPIKeyRequest is the body of POST /api/v1/apikeys.
type CreateAPIKeyRequest struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Owner is the user the key acts as; default the caller. Global
	// registration keys have none.
	Owner string `json:"owner,omitempty"`
	// ExpiresIn is a Go duration ("720h"); empty means never.
	ExpiresIn   string   `json:"expires_in,omitempty"`
	SourceCIDRs []string `json:"source_cidrs,omitempty"`
}

// APIKeyInfo is an API key as listed: never its secret.
type APIKeyInfo struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Kind        string     `json:"kind"`
	Owner       string     `json:"owner"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	SourceCIDRs []string   `json:"source_cidrs"`
	// State is "active", "revoked" or "expired".
	State string `json:"state"`
}

// CreatedAPIKey is the answer of POST /api/v1/apikeys: the only time the
// key's value is shown.
type CreatedAPIKey struct {
	APIKeyInfo
	// Key is the whole value of the X-API-KEY header.
	Key string `json:"key"`
}

// maxKeyName bounds names of keys (they are labels, not documents).
const maxKeyName = 100

func keyInfo(k store.APIKey, now time.Time) APIKeyInfo {
	info := APIKeyInfo{ID: k.ID, Name: k.Name, Kind: k.Kind, Owner: k.Owner, CreatedBy: k.CreatedBy,
		CreatedAt: k.CreatedAt, SourceCIDRs: orEmpty(k.SourceCIDRs), State: "active"}
	if !k.ExpiresAt.IsZero() {
		t := k.ExpiresAt
		info.ExpiresAt = &t
		if !now.Before(t) {
			info.State = "expired"
		}
	}
	if !k.RevokedAt.IsZero() {
		t := k.RevokedAt
		info.RevokedAt = &t
		info.State = "revoked"
	}
	return info
}

// createAPIKey makes a key. Nobody gets a key with more rights than they
// hold: non-admins make access keys for themselves only; registration keys
// are for admins; and a key cannot make keys: a stolen key that could mint
// another would outlive its own revocation, expiry and source networks.
func (a *api) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	p := caller(r)
	if p.Via == ViaAPIKey {
		return clientError(http.StatusForbidden,
			"API keys cannot create API keys: create them in the web console or with portcullis apikey create on the gateway")
	}
	var req CreateAPIKeyRequest
	if err := decodeJSONRequest(w, r, 16<<10, &req); err != nil {
		return err
	}
	now := a.now()
	k := store.APIKey{Name: strings.TrimSpace(req.Name), Kind: req.Kind, Owner: req.Owner,
		CreatedBy: p.actor(), CreatedAt: now}
	switch {
	case k.Name == "":
		return clientError(http.StatusBadRequest, "field name: required")
	case len(k.Name) > maxKeyName || strings.ContainsFunc(k.Name, isControl):
		return clientError(http.StatusBadRequest, "field name: at most %d characters, no control characters", maxKeyName)
	}
	switch k.Kind {
	case store.APIKeyAccess:
		if k.Owner == "" {
			if p.superuser() {
				return clientError(http.StatusBadRequest, "field owner: required on the admin socket (a key acts as a user)")
			}
			k.Owner = p.Name
		}
		if k.Owner != p.Name && !p.admin() {
			return clientError(http.StatusForbidden, "%s may only create keys for itself, not for %s", p.actor(), k.Owner)
		}
		if _, ok := a.inv.Snapshot().UserRoles(k.Owner); !ok {
			return clientError(http.StatusBadRequest, "field owner: no user %q", k.Owner)
		}
	case store.APIKeyRegistration:
		if !p.admin() {
			return clientError(http.StatusForbidden, "%s needs the admin role to create registration keys", p.actor())
		}
		global, err := a.globalRegistrationKeys(r.Context())
		if err != nil {
			return fmt.Errorf("create API key: %w", err)
		}
		if global {
			if k.Owner != "" {
				return clientError(http.StatusBadRequest,
					"field owner: global registration keys are on, and global keys have no owner (settings set global_registration_keys false for per-admin keys)")
			}
		} else {
			if k.Owner == "" {
				if p.superuser() {
					return clientError(http.StatusBadRequest,
						"field owner: global registration keys are off: name the admin who owns the key")
				}
				k.Owner = p.Name
			}
			if k.Owner != p.Name && !p.superuser() {
				return clientError(http.StatusForbidden, "with global registration keys off, each admin creates their own registration keys")
			}
			roles, ok := a.inv.Snapshot().UserRoles(k.Owner)
			if !ok || !contains(roles, resource.RoleAdmin) {
				return clientError(http.StatusBadRequest, "field owner: %q is not an admin user", k.Owner)
			}
		}
	default:
		return clientError(http.StatusBadRequest, "field kind: %q is not access or registration", req.Kind)
	}
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			return clientError(http.StatusBadRequest, "field expires_in: %q is not a positive duration like 720h", req.ExpiresIn)
		}
		k.ExpiresAt = now.Add(d)
	}
	for i, c := range req.SourceCIDRs {
		pfx, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return clientError(http.StatusBadRequest, "field source_cidrs[%d]: %q is not a CIDR like 10.0.0.0/8", i, c)
		}
		k.SourceCIDRs = append(k.SourceCIDRs, pfx.Masked().String())
	}
	id, value, err := apikey.New()
	if err != nil {
		return fmt.Errorf("create API key: %w", err)
	}
	_, secret, _ := apikey.Parse(value)
	k.ID, k.SecretHash = id, apikey.Hash(id, secret)
	if err := a.store.CreateAPIKey(r.Context(), k); err != nil {
		return fmt.Errorf("create API key: %w", err)
	}
	info := keyInfo(k, now)
	if err := a.audit.Write(r.Context(), store.AuditEvent{Type: audit.APIKeyCreate, Outcome: audit.Success,
		User: p.actor(), Source: source(r), Message: fmt.Sprintf("created %s key %s (%s) for %q", k.Kind, id, k.Name, k.Owner),
		Detail: map[string]any{"key_id": id, "name": k.Name, "kind": k.Kind, "owner": k.Owner,
			"source_cidrs": orEmpty(k.SourceCIDRs), "expires_at": info.ExpiresAt}}); err != nil {
		// A key the trail does not know of must not work: take it back.
		_ = a.store.RevokeAPIKey(r.Context(), id, now)
		return fmt.Errorf("create API key: audit: %w", err)
	}
	writeJSON(w, http.StatusCreated, CreatedAPIKey{APIKeyInfo: info, Key: value})
	return nil
}

func (a *api) listAPIKeys(w http.ResponseWriter, r *http.Request) error {
	p := caller(r)
	keys, err := a.store.ListAPIKeys(r.Context())
	if err != nil {
		return fmt.Errorf("list API keys: %w", err)
	}
	now := a.now()
	out := []APIKeyInfo{}
	for _, k := range keys {
		if p.admin() || (p.Name != "" && k.Owner == p.Name) {
			out = append(out, keyInfo(k, now))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) revokeAPIKey(w http.ResponseWriter, r *http.Request) error {
	p := caller(r)
	id := r.PathValue("id")
	if !apikey.ValidID(id) {
		return clientError(http.StatusNotFound, "no API key %q (an id is 16 hex characters; see apikey ls)", id)
	}
	k, err := a.store.GetAPIKey(r.Context(), id)
	// Someone else's key answers like a missing one: ids are not for
	// probing.
	if errors.Is(err, store.ErrNotFound) || (err == nil && !p.admin() && (p.Name == "" || k.Owner != p.Name)) {
		return clientError(http.StatusNotFound, "no API key %s", id)
	}
	if err != nil {
		return fmt.Errorf("revoke API key: %w", err)
	}
	now := a.now()
	if err := a.store.RevokeAPIKey(r.Context(), id, now); err != nil {
		return fmt.Errorf("revoke API key: %w", err)
	}
	a.accessGen.Add(1)
	if k.RevokedAt.IsZero() {
		k.RevokedAt = now
	}
	_ = a.audit.Write(r.Context(), store.AuditEvent{Type: audit.APIKeyRevoke, Outcome: audit.Success,
		User: p.actor(), Source: source(r), Message: fmt.Sprintf("revoked %s key %s (%s)", k.Kind, id, k.Name),
		Detail: map[string]any{"key_id": id, "owner": k.Owner}})
	writeJSON(w, http.StatusOK, keyInfo(k, now))
	return nil
}

// Settings is the answer of GET /api/v1/settings.
type Settings struct {
	GlobalRegistrationKeys bool `json:"global_registration_keys"`
}

// SettingRequest is the body of PUT /api/v1/settings/{name}.
type SettingRequest struct {
	Value any `json:"value"`
}

func (a *api) getSettings(w http.ResponseWriter, r *http.Request) error {
	g, err := a.globalRegistrationKeys(r.Context())
	if err != nil {
		return fmt.Errorf("read settings: %w", err)
	}
	writeJSON(w, http.StatusOK, Settings{GlobalRegistrationKeys: g})
	return nil
}

func (a *api) putSetting(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if name != SettingGlobalRegistrationKeys {
		return clientError(http.StatusNotFound, "no setting %q (settings: %s)", name, SettingGlobalRegistrationKeys)
	}
	var req SettingRequest
	if err := decodeJSONRequest(w, r, 4<<10, &req); err != nil {
		return err
	}
	b, ok := req.Value.(bool)
	if !ok {
		return clientError(http.StatusBadRequest, "field value: %s takes true or false", name)
	}
	before, err := a.globalRegistrationKeys(r.Context())
	if err != nil {
		return fmt.Errorf("set %s: %w", name, err)
	}
	if err := a.store.SetSetting(r.Context(), name, strconv.FormatBool(b)); err != nil {
		return fmt.Errorf("set %s: %w", name, err)
	}
	a.accessGen.Add(1)
	_ = a.audit.Write(r.Context(), store.AuditEvent{Type: audit.SettingChange, Outcome: audit.Success,
		User: caller(r).actor(), Source: source(r), Message: fmt.Sprintf("%s set to %v", name, b),
		Detail: map[string]any{"setting": name, "before": before, "after": b}})
	return a.getSettings(w, r)
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

// RegisterRequest is the body of POST /api/v1/targets/register.
type RegisterRequest struct {
	Name    string            `json:"name"`
	Address string            `json:"address"`
	HostKey string            `json:"host_key"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// registerTarget adds a Target. A registration may create a target, or
// repeat one exactly (an agent restarting); it may not change a target:
// that is an admin's apply.
func (a *api) registerTarget(w http.ResponseWriter, r *http.Request) error {
	p := caller(r)
	var req RegisterRequest
	if err := decodeJSONRequest(w, r, 64<<10, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.HostKey) == "" {
		return clientError(http.StatusBadRequest, "field host_key: required: a registered target's host key is pinned, never learned")
	}
	t := &resource.Target{Kind: resource.KindTarget, Name: req.Name, Address: req.Address,
		HostKey: strings.TrimSpace(req.HostKey), Labels: req.Labels}
	if err := t.Validate(); err != nil {
		return clientError(http.StatusBadRequest, "%v", err)
	}
	status := http.StatusCreated
	old, err := a.inv.Create(r.Context(), t)
	switch {
	case errors.Is(err, inventory.ErrExists):
		if !sameTarget(old, t) {
			return clientError(http.StatusConflict, "target %q is already registered with other settings; an admin changes it with apply", t.Name)
		}
		status = http.StatusOK
	case err != nil:
		return fmt.Errorf("register target: %w", err)
	}
	_ = a.audit.Write(r.Context(), store.AuditEvent{Type: audit.TargetRegister, Outcome: audit.Success,
		User: p.actor(), Source: source(r), Target: t.Name,
		Message: fmt.Sprintf("target %s registered at %s", t.Name, t.Address),
		Detail:  map[string]any{"key_id": p.KeyID, "address": t.Address, "labels": t.Labels, "created": status == http.StatusCreated}})
	writeJSON(w, status, t)
	return nil
}

func sameTarget(o resource.Object, t *resource.Target) bool {
	old, ok := o.(*resource.Target)
	if !ok || old.Address != t.Address || old.HostKey != t.HostKey || len(old.Labels) != len(t.Labels) || old.Auth != t.Auth {
		return false
	}
	for k, v := range t.Labels {
		if old.Labels[k] != v {
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// openAPI serves the OpenAPI document. It needs no principal: it
// describes the API and holds no data.
func (a *api) openAPI(w http.ResponseWriter, _ *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(OpenAPI())
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
