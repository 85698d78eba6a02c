package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// SSHKey is one public key of a user, as GET /api/v1/users/{name}/ssh-keys
// lists it.
type SSHKey struct {
	// Key is the authorized_keys line as stored.
	Key string `json:"key"`
	// Fingerprint is the SHA256 fingerprint, which names the key in a
	// DELETE.
	Fingerprint string `json:"fingerprint"`
	// Type is the key algorithm (ssh-ed25519, ...).
	Type string `json:"type"`
	// Comment is what follows the key on its line, if anything.
	Comment string `json:"comment,omitempty"`
}

// SSHKeyRequest is the body of POST /api/v1/users/{name}/ssh-keys.
type SSHKeyRequest struct {
	Key string `json:"key"`
	// CurrentPassword is required when users add a key to themselves:
	// a key outlives the console session or API key that added it, so
	// holding one of those must not be enough to gain SSH access.
	CurrentPassword string `json:"current_password,omitempty"`
}

// MaxUserSSHKeys bounds the keys self-service may give one user.
const MaxUserSSHKeys = 32

// selfOrAdmin refuses anyone but the user themself and admins.
func selfOrAdmin(p Principal, name, what string) error {
	if !p.admin() && p.Name != name {
		return clientError(http.StatusForbidden, "%s may only %s its own SSH keys", p.actor(), what)
	}
	return nil
}

// localUser reads the User resource name (not a service account).
func (a *api) localUser(r *http.Request, name string) (*resource.User, error) {
	o, err := a.inv.Get(r.Context(), resource.KindUser, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, clientError(http.StatusNotFound, "no user %q", name)
		}
		return nil, fmt.Errorf("read user %s: %w", name, err)
	}
	u, ok := o.(*resource.User)
	if !ok {
		return nil, fmt.Errorf("user %q decoded as %T", name, o)
	}
	return u, nil
}

func sshKeyView(line string) SSHKey {
	k := SSHKey{Key: line}
	if pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
		k.Fingerprint, k.Type, k.Comment = ssh.FingerprintSHA256(pub), pub.Type(), comment
	}
	return k
}

func (a *api) listSSHKeys(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := selfOrAdmin(caller(r), name, "read"); err != nil {
		return err
	}
	u, err := a.localUser(r, name)
	if err != nil {
		return err
	}
	out := make([]SSHKey, 0, len(u.SSHKeys))
	for _, line := range u.SSHKeys {
		out = append(out, sshKeyView(line))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) addSSHKey(w http.ResponseWriter, r *http.Request) error {
	p := caller(r)
	name := r.PathValue("name")
	if err := selfOrAdmin(p, name, "add"); err != nil {
		return err
	}
	var req SSHKeyRequest
	if err := decodeJSONRequest(w, r, 16<<10, &req); err != nil {
		return err
	}
	line := strings.TrimSpace(req.Key)
	pub, err := resource.ParseAuthorizedKey(line)
	if err != nil {
		return clientError(http.StatusBadRequest, "field key: %v", err)
	}
	// The user proves who they are, as for a password change; admins add
	// keys to others (and the socket to anyone) without.
	if !p.superuser() && p.Name == name {
		if err := a.checkCurrentPassword(r.Context(), name, req.CurrentPassword); err != nil {
			return err
		}
	}
	// One read-modify-write at a time, so that two additions never lose
	// one another.
	a.keysMu.Lock()
	defer a.keysMu.Unlock()
	u, err := a.localUser(r, name)
	if err != nil {
		return err
	}
	fp := ssh.FingerprintSHA256(pub)
	for _, have := range u.SSHKeys {
		if sshKeyView(have).Fingerprint == fp {
			return clientError(http.StatusConflict, "field key: %s is already a key of %s", fp, name)
		}
	}
	if len(u.SSHKeys) >= MaxUserSSHKeys {
		return clientError(http.StatusBadRequest, "field key: %s has %d keys, the most self-service keeps; remove one first", name, len(u.SSHKeys))
	}
	u.SSHKeys = append(slices.Clone(u.SSHKeys), line)
	if err := a.storeUserKeys(r, u, "added", fp); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, sshKeyView(line))
	return nil
}

func (a *api) removeSSHKey(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := selfOrAdmin(caller(r), name, "remove"); err != nil {
		return err
	}
	fp := r.PathValue("fingerprint")
	a.keysMu.Lock()
	defer a.keysMu.Unlock()
	u, err := a.localUser(r, name)
	if err != nil {
		return err
	}
	kept := make([]string, 0, len(u.SSHKeys))
	for _, line := range u.SSHKeys {
		if sshKeyView(line).Fingerprint != fp {
			kept = append(kept, line)
		}
	}
	if len(kept) == len(u.SSHKeys) {
		return clientError(http.StatusNotFound, "%s has no SSH key %s", name, fp)
	}
	u.SSHKeys = kept
	if err := a.storeUserKeys(r, u, "removed", fp); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// storeUserKeys applies u through the inventory, as apply would, and
// audits the change by the key's fingerprint.
func (a *api) storeUserKeys(r *http.Request, u *resource.User, verb, fp string) error {
	if _, err := a.inv.Apply(r.Context(), []resource.Object{u}); err != nil {
		return fmt.Errorf("store the SSH keys of %s: %w", u.Name, err)
	}
	// A removed key stops working for new connections at once.
	a.accessGen.Add(1)
	_ = a.audit.Write(r.Context(), store.AuditEvent{Type: audit.ResourceApply, Outcome: audit.Success,
		User: caller(r).actor(), Source: source(r), Message: fmt.Sprintf("SSH key %s %s for user %s", fp, verb, u.Name),
		Detail: map[string]any{"user": u.Name, "fingerprint": fp, "change": "ssh_key " + verb, "request_id": requestID(r.Context())}})
	return nil
}
