package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/kubeproxy"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/signin"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/vault"
	"k8s.io/klog/v2"
)

// buildKubeProxy builds the Kubernetes front (package kubeproxy) over the
// HTTPS listener's handler: requests for TARGET.<http_host> naming a
// kubernetes target and under /k8s/TARGET/ go to it, every other request
// to next (the web API front, which answers every other target host). kubectl authenticates with an access API key as
// its bearer token (the kubeconfig `portcullis kubeconfig` writes).
func (s *Server) buildKubeProxy(v *vault.Vault, next http.Handler, keys api.Authenticator) (http.Handler, error) {
	caller := func(r *http.Request) (kubeproxy.Caller, bool, error) {
		p, ok, err := keys.Authenticate(r)
		if err != nil || !ok {
			return kubeproxy.Caller{}, false, err
		}
		if p.KeyKind != store.APIKeyAccess {
			return kubeproxy.Caller{}, false, fmt.Errorf("API key %s is not an access key", p.KeyID)
		}
		if p.Name == "" {
			return kubeproxy.Caller{}, false, fmt.Errorf("this key acts as no user")
		}
		return kubeproxy.Caller{User: p.Name, Key: p.KeyID}, true, nil
	}
	// The Kubernetes libraries of the exec relay (client-go,
	// cri-streaming, streaming) log through klog, process-wide: into the
	// gateway's log rather than bare lines on stderr.
	klog.SetSlogLogger(s.log.With("front", "kubernetes", "part", "k8s-libraries"))
	front, err := kubeproxy.New(kubeproxy.Config{
		Snapshot:   s.inv.Snapshot,
		Vault:      v,
		Audit:      s.audit,
		Log:        s.log.With("front", "kubernetes"),
		Caller:     caller,
		Groups:     s.directoryGroups(),
		Available:  s.health.Available,
		Recordings: s.recordings,
		Commands:   s.store,
		Host:       s.cfg.HTTPHost,
	})
	if err != nil {
		return nil, fmt.Errorf("kubernetes front: %w", err)
	}
	front.EnableCredentials(kubeproxy.CredentialConfig{
		SignIn: &signin.Checker{Credentials: s.store, Snapshot: s.inv.Snapshot, DirectoryPassword: s.consoleDirectoryPassword(),
			Groups: s.directoryGroups(), MFA: s.mfa},
		Failures: s.failures,
		Keys:     s.store,
	})
	s.kube = front
	s.inv.Subscribe(front.Recheck)
	return front.Wrap(next), nil
}

// kubeCredential is POST /api/v1/kube/credentials (the API is built
// before the HTTPS listener and its Kubernetes front, so this looks the
// front up on each call).
func (s *Server) kubeCredential(ctx context.Context, a api.KubeCredentialAttempt) (api.KubeCredentialResponse, error) {
	if s.kube == nil {
		return api.KubeCredentialResponse{}, &api.KubeCredentialError{Status: http.StatusServiceUnavailable, Message: "the Kubernetes front is not running"}
	}
	ttl := time.Duration(a.TTLSeconds) * time.Second
	if a.TTLSeconds < 0 || a.TTLSeconds > int64(kubeproxy.MaxCredentialTTL/time.Second) {
		ttl = -1 // out of range without overflowing: refused as such
	}
	c, err := s.kube.IssueCredential(ctx, kubeproxy.CredentialRequest{User: a.User, Password: a.Password, Code: a.Code,
		Target: a.Target, TTL: ttl, Addr: a.Addr, Source: a.Source})
	var ce *kubeproxy.CredentialError
	if errors.As(err, &ce) {
		return api.KubeCredentialResponse{}, &api.KubeCredentialError{Status: ce.Status, Message: ce.Message, CodeRequired: ce.CodeRequired}
	}
	if err != nil {
		return api.KubeCredentialResponse{}, err
	}
	return api.KubeCredentialResponse{Token: c.Token, KeyID: c.KeyID, ExpiresAt: c.ExpiresAt.UTC()}, nil
}

// kubeSessions is the Kubernetes front's streams (exec, attach,
// port-forward) as a Controller, looked up on each call like webSessions.
type kubeSessions struct{ s *Server }

// List implements livesession.Controller.
func (k kubeSessions) List() []livesession.Session {
	if k.s.kube == nil {
		return nil
	}
	return k.s.kube.List()
}

// Kill implements livesession.Controller.
func (k kubeSessions) Kill(id, by, message string) error {
	if k.s.kube == nil {
		return livesession.ErrNotFound
	}
	return k.s.kube.Kill(id, by, message)
}
