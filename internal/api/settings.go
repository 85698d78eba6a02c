package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

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
