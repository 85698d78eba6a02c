package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/store"
)

// MFAEnrollResponse is the answer of POST /api/v1/users/{name}/mfa: what
// the user loads into an authenticator app, and the recovery codes. None of
// it can be read again.
type MFAEnrollResponse struct {
	URI           string   `json:"uri"`
	Secret        string   `json:"secret"`
	RecoveryCodes []string `json:"recovery_codes"`
	// QRPNGBase64 is the URI as a QR code PNG, base64: the console shows it
	// as a data: URL.
	QRPNGBase64 string `json:"qr_png_base64"`
	State       string `json:"state"` // always "pending"
}

// MFAConfirmRequest is the body of POST /api/v1/users/{name}/mfa/confirm.
type MFAConfirmRequest struct {
	Code string `json:"code"`
}

// mfaSubject checks that the caller may manage name's second factor (an
// admin, or the user themself) and that the user exists.
func (a *api) mfaSubject(r *http.Request) (string, error) {
	p := caller(r)
	name := r.PathValue("name")
	if !p.admin() && p.Name != name {
		return "", clientError(http.StatusForbidden, "%s may only manage its own second factor", p.actor())
	}
	if _, ok := a.inv.Snapshot().UserRoles(name); !ok {
		return "", clientError(http.StatusNotFound, "no user %q", name)
	}
	if a.mfa == nil {
		return "", clientError(http.StatusServiceUnavailable, "multi-factor authentication is not configured on this gateway")
	}
	return name, nil
}

// getMFA answers a user's enrollment state.
func (a *api) getMFA(w http.ResponseWriter, r *http.Request) error {
	name, err := a.mfaSubject(r)
	if err != nil {
		return err
	}
	st, err := a.mfa.Status(r.Context(), name)
	if err != nil {
		return fmt.Errorf("MFA status: %w", err)
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// enrollMFA starts an enrollment: pending until confirmed with a code.
func (a *api) enrollMFA(w http.ResponseWriter, r *http.Request) error {
	name, err := a.mfaSubject(r)
	if err != nil {
		return err
	}
	en, err := a.mfa.Enroll(r.Context(), name, mfa.Actor{Name: caller(r).actor(), Source: source(r)})
	if errors.Is(err, mfa.ErrAlreadyEnrolled) {
		return clientError(http.StatusConflict, "%s already has an active second factor: an admin resets it first (portcullis mfa reset %s)", name, name)
	}
	if err != nil {
		return fmt.Errorf("MFA enroll: %w", err)
	}
	// The secret is in this answer and nowhere else readable: no cache
	// may keep it.
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, MFAEnrollResponse{URI: en.URI, Secret: en.Secret, RecoveryCodes: en.RecoveryCodes,
		QRPNGBase64: en.QRBase64(), State: store.MFAPending})
	return nil
}

// confirmMFA activates a pending enrollment with a first code.
func (a *api) confirmMFA(w http.ResponseWriter, r *http.Request) error {
	name, err := a.mfaSubject(r)
	if err != nil {
		return err
	}
	var req MFAConfirmRequest
	if err := decodeJSONRequest(w, r, 4<<10, &req); err != nil {
		return err
	}
	err = a.mfa.Confirm(r.Context(), mfa.Attempt{User: name, Code: req.Code, Addr: remoteAddr(r), Source: source(r), Via: "api"})
	switch {
	case errors.Is(err, mfa.ErrNotPending):
		return clientError(http.StatusConflict, "%s has no enrollment waiting for a code: enroll first", name)
	case errors.Is(err, mfa.ErrInvalid):
		return clientError(http.StatusBadRequest, "field code: wrong or already used code (want the 6 digits the app shows now)")
	case errors.Is(err, mfa.ErrLocked):
		return clientError(http.StatusTooManyRequests, "%v", err)
	case err != nil:
		return fmt.Errorf("MFA confirm: %w", err)
	}
	st, err := a.mfa.Status(r.Context(), name)
	if err != nil {
		return fmt.Errorf("MFA status: %w", err)
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// resetMFA removes a user's second factor (admins only, by the route).
func (a *api) resetMFA(w http.ResponseWriter, r *http.Request) error {
	name, err := a.mfaSubject(r)
	if err != nil {
		return err
	}
	if err := a.mfa.Reset(r.Context(), name, mfa.Actor{Name: caller(r).actor(), Source: source(r)}); err != nil {
		return fmt.Errorf("MFA reset: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
