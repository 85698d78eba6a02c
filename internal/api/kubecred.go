package api

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"time"
)

// KubeCredentialRequest is the body of POST /api/v1/kube/credentials: a
// sign-in for a short-lived kubectl credential (portcullis
// kube-credential, the exec credential plugin).
type KubeCredentialRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	// Code is the verification code; leave it out until the answer
	// asks for it (code mfa_required).
	Code   string `json:"code,omitempty"`
	Target string `json:"target"`
	// TTLSeconds is the lifetime asked for: 300 to 43200; 0 or absent:
	// 8 hours.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// KubeCredentialResponse is the answer of a granted sign-in: an access API
// key of the caller that expires at ExpiresAt.
type KubeCredentialResponse struct {
	Token     string    `json:"token"`
	KeyID     string    `json:"key_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// KubeCredentialAttempt is a sign-in as the API hands it to
// Config.KubeCredentials: the body and the client's address.
type KubeCredentialAttempt struct {
	KubeCredentialRequest
	Addr   netip.Addr
	Source string
}

// KubeCredentialError is a refused sign-in from Config.KubeCredentials:
// Message is shown to the client; CodeRequired answers code mfa_required.
type KubeCredentialError struct {
	Status       int
	Message      string
	CodeRequired bool
}

func (e *KubeCredentialError) Error() string { return e.Message }

// maxKubeCredentialBody bounds the sign-in body.
const maxKubeCredentialBody = 8 << 10

// kubeCredential answers POST /api/v1/kube/credentials. It is public (the
// body is the credential) and served over HTTPS only.
func (a *api) kubeCredential(w http.ResponseWriter, r *http.Request) error {
	if a.kubeCreds == nil {
		return clientError(http.StatusServiceUnavailable, "this gateway issues no kubectl credentials")
	}
	if r.TLS == nil {
		return clientError(http.StatusForbidden, "kubectl credentials are issued over HTTPS only")
	}
	var req KubeCredentialRequest
	if err := decodeJSONRequest(w, r, maxKubeCredentialBody, &req); err != nil {
		return err
	}
	cred, err := a.kubeCreds(r.Context(), KubeCredentialAttempt{KubeCredentialRequest: req, Addr: remoteAddr(r), Source: source(r)})
	var ke *KubeCredentialError
	switch {
	case errors.As(err, &ke):
		code := statusCode(ke.Status)
		if ke.CodeRequired {
			code = "mfa_required"
		}
		if ke.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "60")
		}
		writeErrorCode(w, ke.Status, code, ke.Message)
		return nil
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusCreated, cred)
	return nil
}

// KubeCredentialFunc issues kubectl credentials (Config.KubeCredentials).
type KubeCredentialFunc func(ctx context.Context, a KubeCredentialAttempt) (KubeCredentialResponse, error)
