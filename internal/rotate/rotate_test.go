package rotate_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/rotate"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/upstream"
	"github.com/portcullis/portcullis/internal/vault"
)

// gateway is the part of a gateway a rotation needs, over a real store.
type gateway struct {
	store store.Store
	vault *vault.Vault
	inv   *inventory.Inventory
	rot   *rotate.Rotator
}

func newGateway(t *testing.T) *gateway {
	t.Helper()
	ctx := context.Background()
	mk := make([]byte, 32)
	if _, err := rand.Read(mk); err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(mk)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := rotate.New(rotate.Config{Inventory: inv, Vault: v, HostKeys: st, Audit: audit.New(st, log), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return &gateway{store: st, vault: v, inv: inv, rot: rot}
}

// signer returns the account's stored key as the gateway would use it.
func (g *gateway) signer(t *testing.T, target, name string) ssh.Signer {
	t.Helper()
	sealed, aad, ok := g.inv.Snapshot().AccountKey(target, name)
	if !ok {
		t.Fatalf("no key for %s/%s", target, name)
	}
	s, err := g.vault.Signer(sealed, aad)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeHomeKeys makes ~/.ssh/authorized_keys of username hold lines, owned
// by the user, as an admin (or an intruder) would leave it.
func writeHomeKeys(t *testing.T, username string, lines ...string) string {
	t.Helper()
	u, err := user.Lookup(username)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir := filepath.Join(u.HomeDir, ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, path} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// newKey makes an intruder's key: ECDSA, which every test target accepts.
func newKey(t *testing.T) ssh.Signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// canLogin reports whether signer logs in as username.
func canLogin(t *testing.T, sshd *testenv.SSHD, username string, signer ssh.Signer) bool {
	t.Helper()
	c, err := ssh.Dial("tcp", sshd.Addr, &ssh.ClientConfig{User: username, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(sshd.HostKey), Timeout: 10 * time.Second})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func authorizedLine(k ssh.PublicKey) string { return upstream.AuthorizedKeyLine(k) }

func ecdsaPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(k, "")
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block))
}

// TestRotate runs rotations against a real sshd that reads
// ~/.ssh/authorized_keys. In the good case an intruder's planted key and
// the old gateway key stop working and the gateway logs in with the new
// key; when the target refuses the new key (it accepts only ECDSA, the new
// key is ed25519), the old key and the file stay as they were.
func TestRotate(t *testing.T) {
	tests := []struct {
		name       string
		sshdOpts   []string
		importKey  bool // the account's current key is an imported ECDSA key
		lock       bool // lock_password, with the account allowed sudo -n
		wantErr    string
		wantRotate bool
	}{
		{name: "takeover", sshdOpts: []string{"AuthorizedKeysFile .ssh/authorized_keys"}, wantRotate: true},
		{name: "takeover with lock_password", sshdOpts: []string{"AuthorizedKeysFile .ssh/authorized_keys"}, lock: true, wantRotate: true},
		{name: "new key refused", importKey: true, wantErr: "log in with the new key",
			sshdOpts: []string{"AuthorizedKeysFile .ssh/authorized_keys", "PubkeyAcceptedAlgorithms ecdsa-sha2-nistp256"}},
		{name: "keys read elsewhere", wantErr: "still accepts the old key",
			sshdOpts: []string{"AuthorizedKeysFile .ssh/authorized_keys /etc/portcullis-test-none/%u"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sshd := testenv.StartSSHD(t, tc.sshdOpts...)
			unixUser := sshd.AddUser(t)
			g := newGateway(t)
			ctx := context.Background()
			acct := &resource.Account{Kind: resource.KindAccount, Target: "web1", Name: unixUser, LockPassword: tc.lock}
			if tc.lock {
				testenv.Require(t, "sudo", "usermod")
				sudoers := "/etc/sudoers.d/" + unixUser
				if err := os.WriteFile(sudoers, []byte(unixUser+" ALL=(ALL) NOPASSWD: ALL\n"), 0o440); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Remove(sudoers) })
				// A password hash someone could have set: the rotation
				// must leave none.
				if out, err := exec.Command("usermod", "-p", "$6$salt$somehash", unixUser).CombinedOutput(); err != nil {
					t.Fatalf("usermod: %v %s", err, out)
				}
			}
			if tc.importKey {
				acct.PrivateKey = ecdsaPEM(t)
			}
			_, err := g.inv.Apply(ctx, []resource.Object{
				&resource.Target{Kind: resource.KindTarget, Name: "web1", Address: sshd.Addr, HostKey: authorizedLine(sshd.HostKey)},
				acct,
			})
			if err != nil {
				t.Fatal(err)
			}
			oldKey := g.signer(t, "web1", unixUser)
			intruder := newKey(t)
			path := writeHomeKeys(t, unixUser, authorizedLine(oldKey.PublicKey())+" gateway", authorizedLine(intruder.PublicKey())+" intruder")
			if tc.name == "keys read elsewhere" {
				// The second file holds the old key too: rewriting
				// ~/.ssh/authorized_keys cannot take the account over.
				if err := os.MkdirAll("/etc/portcullis-test-none", 0o755); err != nil {
					t.Fatal(err)
				}
				other := filepath.Join("/etc/portcullis-test-none", unixUser)
				if err := os.WriteFile(other, []byte(authorizedLine(oldKey.PublicKey())+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Remove(other) })
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !canLogin(t, sshd, unixUser, intruder) || !canLogin(t, sshd, unixUser, oldKey) {
				t.Fatal("setup: the planted keys do not log in")
			}

			res, err := g.rot.Rotate(ctx, "web1", unixUser, "admin")
			if tc.name == "keys read elsewhere" {
				// Found after the new key was stored (so that a crash
				// never loses the account): the new key is kept and
				// works, the file holds only it, and the failure says
				// the takeover is incomplete.
				if err == nil || !strings.Contains(err.Error(), "takeover is incomplete") || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Rotate error = %v, want an incomplete takeover: %q", err, tc.wantErr)
				}
				stored := g.signer(t, "web1", unixUser)
				if ssh.FingerprintSHA256(stored.PublicKey()) == ssh.FingerprintSHA256(oldKey.PublicKey()) || !canLogin(t, sshd, unixUser, stored) {
					t.Fatal("after an incomplete takeover the stored key is not the new, working one")
				}
				if canLogin(t, sshd, unixUser, intruder) {
					t.Fatal("the intruder's key survived in ~/.ssh/authorized_keys")
				}
				checkAudit(t, g, audit.Failure)
				return
			}
			if !tc.wantRotate {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Rotate error = %v, want %q", err, tc.wantErr)
				}
				if !canLogin(t, sshd, unixUser, g.signer(t, "web1", unixUser)) {
					t.Fatal("after a failed rotation the stored key no longer logs in")
				}
				if ssh.FingerprintSHA256(g.signer(t, "web1", unixUser).PublicKey()) != ssh.FingerprintSHA256(oldKey.PublicKey()) {
					t.Fatal("a failed rotation replaced the stored key")
				}
				after, _ := os.ReadFile(path)
				if string(after) != string(before) {
					t.Fatalf("authorized_keys after a failed rotation:\n%s\nwant it unchanged:\n%s", after, before)
				}
				checkAudit(t, g, audit.Failure)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			newKey := g.signer(t, "web1", unixUser)
			if ssh.FingerprintSHA256(newKey.PublicKey()) != res.NewFingerprint || res.OldFingerprint != ssh.FingerprintSHA256(oldKey.PublicKey()) {
				t.Fatalf("result %+v does not match the stored key", res)
			}
			for _, c := range []struct {
				who    string
				signer ssh.Signer
				want   bool
			}{{"intruder", intruder, false}, {"old gateway key", oldKey, false}, {"new gateway key", newKey, true}} {
				if got := canLogin(t, sshd, unixUser, c.signer); got != c.want {
					t.Errorf("%s logs in: %v, want %v", c.who, got, c.want)
				}
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := user.Lookup(unixUser)
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("authorized_keys mode %v, want 0600", fi.Mode().Perm())
			}
			if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != u.Uid {
				t.Errorf("authorized_keys owned by uid %d, want %s", uid, u.Uid)
			}
			a, _ := g.inv.Get(ctx, resource.KindAccount, "web1/"+unixUser)
			if acc := a.(*resource.Account); acc.PublicKey != res.PublicKey || acc.KeyCreated == nil {
				t.Errorf("stored account %+v, want public key %s and public_key_created", acc, res.PublicKey)
			}
			if tc.lock {
				if f := shadowField(t, unixUser); f != "*" || !res.PasswordLocked {
					t.Errorf("password field %q (locked %v), want * after lock_password", f, res.PasswordLocked)
				}
			}
			checkAudit(t, g, audit.Success)
		})
	}
}

// checkAudit finds the account.rotate event and checks that it carries
// fingerprints and no key material.
func checkAudit(t *testing.T, g *gateway, outcome string) {
	t.Helper()
	evs, err := g.store.ListAudit(context.Background(), store.AuditFilter{Type: audit.AccountRotate})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Outcome != outcome {
		t.Fatalf("account.rotate events: %+v, want one %s", evs, outcome)
	}
	if evs[0].Detail["old_fingerprint"] == nil || strings.Contains(evs[0].Message, "PRIVATE KEY") {
		t.Errorf("audit event %+v lacks fingerprints or holds a key", evs[0])
	}
}

// TestDue checks which accounts the schedule picks, with the clock moved
// instead of waiting.
func TestDue(t *testing.T) {
	g := newGateway(t)
	ctx := context.Background()
	_, err := g.inv.Apply(ctx, []resource.Object{
		&resource.Target{Kind: resource.KindTarget, Name: "web1", Address: "127.0.0.1:1"},
		&resource.Account{Kind: resource.KindAccount, Target: "web1", Name: "daily", RotateEvery: resource.Duration(24 * time.Hour)},
		&resource.Account{Kind: resource.KindAccount, Target: "web1", Name: "monthly", RotateEvery: resource.Duration(720 * time.Hour)},
		&resource.Account{Kind: resource.KindAccount, Target: "web1", Name: "never"},
	})
	if err != nil {
		t.Fatal(err)
	}
	made := *g.inv.Snapshot().Account("web1", "daily").KeyCreated
	tests := []struct {
		name  string
		after time.Duration
		want  []string
	}{
		{name: "fresh keys", after: time.Hour},
		{name: "a day later", after: 25 * time.Hour, want: []string{"web1/daily"}},
		{name: "a month later", after: 721 * time.Hour, want: []string{"web1/daily", "web1/monthly"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := made.Add(tc.after)
			rot, err := rotate.New(rotate.Config{Inventory: g.inv, Vault: g.vault, HostKeys: g.store,
				Audit: audit.New(g.store, slog.New(slog.DiscardHandler)), Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range rot.Due() {
				got = append(got, a.GetName())
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Due = %v, want %v", got, tc.want)
			}
		})
	}
}

// shadowField returns the password field of username in /etc/shadow.
func shadowField(t *testing.T, username string) string {
	t.Helper()
	data, err := os.ReadFile("/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Split(line, ":"); len(f) > 1 && f[0] == username {
			return f[1]
		}
	}
	t.Fatalf("%s is not in /etc/shadow", username)
	return ""
}
