package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/duration"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

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
	// Registration keys only: the one environment the key registers
	// targets in, how many registrations it makes (0: no limit), and a
	// glob the registered names must match.
	Environment string `json:"environment,omitempty"`
	MaxUses     int64  `json:"max_uses,omitempty"`
	NamePattern string `json:"name_pattern,omitempty"`
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
	// State is "active", "revoked", "expired" or (a registration key
	// with no use left) "used".
	State string `json:"state"`
	// Registration keys: their limits and how many registrations they
	// made.
	Environment string `json:"environment,omitempty"`
	MaxUses     int64  `json:"max_uses,omitempty"`
	Uses        int64  `json:"uses,omitempty"`
	NamePattern string `json:"name_pattern,omitempty"`
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
		CreatedAt: k.CreatedAt, SourceCIDRs: orEmpty(k.SourceCIDRs), State: "active",
		Environment: k.Environment, MaxUses: k.MaxUses, Uses: k.Uses, NamePattern: k.NamePattern}
	if k.MaxUses > 0 && k.Uses >= k.MaxUses {
		info.State = "used"
	}
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
		d, err := duration.Parse(req.ExpiresIn)
		if err != nil || d <= 0 {
			return clientError(http.StatusBadRequest, "field expires_in: %q is not a positive duration like 720h or 30d", req.ExpiresIn)
		}
		k.ExpiresAt = now.Add(d)
	}
	if k.Kind != store.APIKeyRegistration && (req.Environment != "" || req.MaxUses != 0 || req.NamePattern != "") {
		return clientError(http.StatusBadRequest, "fields environment, max_uses and name_pattern: for registration keys only")
	}
	if req.MaxUses < 0 {
		return clientError(http.StatusBadRequest, "field max_uses: %d is negative (0 means no limit)", req.MaxUses)
	}
	if req.Environment != "" {
		if !resource.ValidName(req.Environment) {
			return clientError(http.StatusBadRequest, "field environment: %q is not a valid name", req.Environment)
		}
	}
	if req.NamePattern != "" {
		if _, err := path.Match(req.NamePattern, ""); err != nil || len(req.NamePattern) > maxKeyName {
			return clientError(http.StatusBadRequest, "field name_pattern: %q is not a glob like web-*", req.NamePattern)
		}
	}
	k.Environment, k.MaxUses, k.NamePattern = req.Environment, req.MaxUses, req.NamePattern
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
			"source_cidrs": orEmpty(k.SourceCIDRs), "expires_at": info.ExpiresAt,
			"environment": k.Environment, "max_uses": k.MaxUses, "name_pattern": k.NamePattern}}); err != nil {
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

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
