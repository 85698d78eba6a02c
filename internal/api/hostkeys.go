package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// PinResponse is the answer of POST /api/v1/targets/{name}/pin.
type PinResponse struct {
	Target      string    `json:"target"`
	HostKey     string    `json:"host_key"`    // authorized_keys format, now the Target's host_key
	Fingerprint string    `json:"fingerprint"` // SHA256:...
	FirstSeen   time.Time `json:"first_seen"`  // when the gateway learned it
	// AlreadyPinned is true when the Target already had this key pinned:
	// nothing changed.
	AlreadyPinned bool `json:"already_pinned,omitempty"`
}

// fillLearnedHostKeys sets LearnedHostKey on every Target of objs that has
// no pinned key and whose key the gateway learned on first use, so that a
// reader sees which key it trusts.
func (a *api) fillLearnedHostKeys(ctx context.Context, objs []resource.Object) error {
	if a.store == nil {
		return nil
	}
	for _, o := range objs {
		t, ok := o.(*resource.Target)
		if !ok {
			continue
		}
		if t.ThroughAgent() {
			if err := a.fillAgentStatus(ctx, t); err != nil {
				return err
			}
		}
		if t.HostKey != "" {
			continue
		}
		hk, err := a.store.HostKey(ctx, t.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return fmt.Errorf("read learned host key of %s: %w", t.Name, err)
		default:
			t.LearnedHostKey = hk.Key
		}
	}
	return nil
}

// pinTarget copies the host key learned on first use into the Target's
// host_key: from then on a different key is refused rather than learned,
// even after the learned key is forgotten. The change is an apply and is
// audited as one.
func (a *api) pinTarget(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	o, err := a.inv.Get(r.Context(), resource.KindTarget, name)
	if errors.Is(err, store.ErrNotFound) {
		return clientError(http.StatusNotFound, "Target %q not found", name)
	}
	if err != nil {
		return err
	}
	t, ok := o.(*resource.Target)
	if !ok {
		return fmt.Errorf("target %q decoded as %T", name, o)
	}
	hk, err := a.store.HostKey(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		if t.HostKey != "" {
			return clientError(http.StatusConflict, "Target %q already has a pinned host_key and no learned one", name)
		}
		return clientError(http.StatusConflict,
			"the gateway has not learned a host key for Target %q yet: connect through it once, or set host_key", name)
	}
	if err != nil {
		return fmt.Errorf("read learned host key of %s: %w", name, err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hk.Key))
	if err != nil {
		return fmt.Errorf("learned host key of %s: %w", name, err)
	}
	res := PinResponse{Target: name, HostKey: hk.Key, Fingerprint: ssh.FingerprintSHA256(pub), FirstSeen: hk.FirstSeen.UTC()}
	if t.HostKey != "" {
		pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(t.HostKey))
		if err == nil && string(pinned.Marshal()) == string(pub.Marshal()) {
			res.AlreadyPinned = true
			writeJSON(w, http.StatusOK, res)
			return nil
		}
		return clientError(http.StatusConflict,
			"Target %q has another host_key pinned than the one learned (%s): change host_key with apply if the target's key really changed",
			name, res.Fingerprint)
	}
	t.HostKey = hk.Key
	applied, err := a.inv.Apply(r.Context(), []resource.Object{t})
	if err != nil {
		return fmt.Errorf("pin host key of %s: %w", name, err)
	}
	if err := a.auditApply(r, 1, applied); err != nil {
		a.log.Error("audit pin", "target", name, "err", err)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// fillAgentStatus sets the Agent status of an agent target from the store,
// which every gateway sharing it writes.
func (a *api) fillAgentStatus(ctx context.Context, t *resource.Target) error {
	ag, err := a.store.GetAgent(ctx, t.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		t.Agent = &resource.AgentStatus{}
		return nil
	case err != nil:
		return fmt.Errorf("read agent of %s: %w", t.Name, err)
	}
	st := &resource.AgentStatus{Connected: !ag.ConnectedAt.IsZero(), Gateway: ag.Gateway, Version: ag.Version, Mode: ag.Mode}
	if !ag.LastSeen.IsZero() {
		ls := ag.LastSeen
		st.LastSeen = &ls
	}
	t.Agent = st
	return nil
}
