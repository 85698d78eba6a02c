package api

import (
	"errors"
	"fmt"
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
