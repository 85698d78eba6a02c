package api

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

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
		HostKey: strings.TrimSpace(req.HostKey), Labels: maps.Clone(req.Labels)}
	if p.registration() {
		// The key's limits bind here as on the agent front: without
		// them a spent key, or one meant for web-* in staging, registers
		// anything anywhere.
		env, err := a.registrationLimits(r, p, t.Name, t.Labels[store.EnvironmentLabel])
		if err != nil {
			return err
		}
		if env != "" {
			if t.Labels == nil {
				t.Labels = map[string]string{}
			}
			t.Labels[store.EnvironmentLabel] = env
		}
	}
	if err := t.Validate(); err != nil {
		return clientError(http.StatusBadRequest, "%v", err)
	}
	if p.registration() {
		// Counted only once the request is otherwise sound, in the one
		// statement that also checks the limit, so concurrent requests
		// cannot overdraw the key.
		if err := a.store.UseRegistrationKey(r.Context(), p.KeyID, a.now()); errors.Is(err, store.ErrConflict) {
			msg := fmt.Sprintf("registration key %s is used up, revoked or expired", p.KeyID)
			a.deny(r, p, msg)
			return clientError(http.StatusForbidden, "%s", msg)
		} else if err != nil {
			return fmt.Errorf("register target: count the use of registration key %s: %w", p.KeyID, err)
		}
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

// registrationLimits applies the limits of the caller's registration key
// to a target named name asking for environment env, and answers the
// environment the target gets. A refusal is audited and answered 403.
func (a *api) registrationLimits(r *http.Request, p Principal, name, env string) (string, error) {
	k, err := a.store.GetAPIKey(r.Context(), p.KeyID)
	if err != nil {
		return "", fmt.Errorf("read registration key %s: %w", p.KeyID, err)
	}
	env, err = store.CheckRegistration(k, name, env, a.now())
	var rr *store.RegistrationRefusal
	if errors.As(err, &rr) {
		msg := fmt.Sprintf("%s (key %s)", rr.Msg, p.KeyID)
		a.deny(r, p, msg)
		return "", clientError(http.StatusForbidden, "%s", msg)
	}
	if err != nil {
		return "", fmt.Errorf("check registration key %s: %w", p.KeyID, err)
	}
	return env, nil
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
