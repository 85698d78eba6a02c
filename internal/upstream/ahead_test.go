package upstream_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/upstream"
)

// hostKeys is a HostKeyStore in memory that counts what is recorded.
type hostKeys struct {
	mu       sync.Mutex
	keys     map[string]store.HostKey
	recorded int
}

func (h *hostKeys) HostKey(_ context.Context, target string) (store.HostKey, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if k, ok := h.keys[target]; ok {
		return k, nil
	}
	return store.HostKey{}, store.ErrNotFound
}

func (h *hostKeys) RecordHostKey(_ context.Context, hk store.HostKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recorded++
	h.keys[hk.Target] = hk
	return nil
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPending drives a connection made ahead against a real sshd: logged
// in when handed a credential; and, when its host key is wrong or not
// known yet, or when it is closed unused, ended with no credential
// offered, nothing learned and nothing audited.
func TestPending(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, testenv.SSHDPath)
	sshd := testenv.StartSSHD(t)
	user := sshd.AddUser(t)
	signer := newSigner(t)
	sshd.AuthorizeKey(t, user, signer.PublicKey())
	pinned := upstream.AuthorizedKeyLine(sshd.HostKey)
	wrong := upstream.AuthorizedKeyLine(newSigner(t).PublicKey())

	for _, tc := range []struct {
		name    string
		hostKey string // pinned host_key; "" for trust on first use
		close   bool   // Close instead of Login
		wantErr error  // nil: logged in
	}{
		{"pinned key: logged in", pinned, false, nil},
		{"wrong pinned key: not used", wrong, false, upstream.ErrNotUsed},
		{"key not known yet: not used, not learned", "", false, upstream.ErrNotUsed},
		{"closed unused", pinned, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hk := &hostKeys{keys: map[string]store.HostKey{}}
			var audited []store.AuditEvent
			target := &resource.Target{Name: "web1", Address: sshd.Addr, HostKey: tc.hostKey}
			offered := strings.Count(sshd.Log(), "publickey for "+user)
			p, err := upstream.Prepare(context.Background(), upstream.Config{Target: target, User: user, HostKeys: hk,
				Audit: func(ev store.AuditEvent) { audited = append(audited, ev) }, Timeout: 10 * time.Second}, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Matches(target, user) || p.Matches(target, "root") {
				t.Error("Matches does not tell its own target and user from another user")
			}
			if tc.close {
				p.Close()
				if _, _, _, err := p.Login(signer); !errors.Is(err, upstream.ErrNotUsed) {
					t.Errorf("Login after Close: %v, want ErrNotUsed", err)
				}
			} else {
				sc, chans, reqs, err := p.Login(signer)
				switch {
				case tc.wantErr == nil && err != nil:
					t.Fatalf("Login: %v", err)
				case tc.wantErr == nil:
					cl := ssh.NewClient(sc, chans, reqs)
					out, err := upstream.Run(cl, "echo ran", "")
					cl.Close()
					if err != nil || out != "ran\n" {
						t.Fatalf("run: %q, %v", out, err)
					}
				case !errors.Is(err, tc.wantErr):
					t.Fatalf("Login: %v, want %v", err, tc.wantErr)
				}
				p.Close() // a no-op after Login
			}
			if tc.wantErr != nil || tc.close {
				if n := strings.Count(sshd.Log(), "publickey for "+user); n != offered {
					t.Errorf("the target saw a key offered for %s", user)
				}
			}
			if hk.recorded != 0 {
				t.Errorf("%d host keys learned by a connection made ahead", hk.recorded)
			}
			if len(audited) != 0 {
				t.Errorf("a connection made ahead audited %+v", audited)
			}
		})
	}
}
