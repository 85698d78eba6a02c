package rotate_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/rotate"
	"github.com/portcullis/portcullis/internal/testenv"
)

// review3Setup starts an sshd reading ~/.ssh/authorized_keys (plus
// extra), makes an account whose file holds the stored gateway key and an
// intruder's key, and returns the unix user.
func review3Setup(t *testing.T, g *gateway, lock bool, extra ...string) (*testenv.SSHD, string) {
	t.Helper()
	opts := []string{"AuthorizedKeysFile .ssh/authorized_keys"}
	if len(extra) > 0 {
		opts = extra
	}
	sshd := testenv.StartSSHD(t, opts...)
	unixUser := sshd.AddUser(t)
	if lock {
		testenv.Require(t, "sudo", "usermod")
		sudoers := "/etc/sudoers.d/" + unixUser
		if err := os.WriteFile(sudoers, []byte(unixUser+" ALL=(ALL) NOPASSWD: ALL\n"), 0o440); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(sudoers) })
	}
	_, err := g.inv.Apply(context.Background(), []resource.Object{
		&resource.Target{Kind: resource.KindTarget, Name: "web1", Address: sshd.Addr, HostKey: authorizedLine(sshd.HostKey)},
		&resource.Account{Kind: resource.KindAccount, Target: "web1", Name: unixUser, LockPassword: lock},
	})
	if err != nil {
		t.Fatal(err)
	}
	return sshd, unixUser
}

// review3PauseAt installs ~/.ssh/rc, which sshd runs before every session:
// the n-th session from now waits until release is called. It returns a
// channel closed once that session is paused.
func review3PauseAt(t *testing.T, unixUser string, n int) (paused <-chan struct{}, release func()) {
	t.Helper()
	u, err := user.Lookup(unixUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	rc := filepath.Join(u.HomeDir, ".ssh", "rc")
	script := fmt.Sprintf(`n=$(cat "$HOME/.r3count" 2>/dev/null || echo 0)
n=$((n+1))
echo "$n" >"$HOME/.r3count"
if [ "$n" = %d ]; then
  : >"$HOME/.r3paused"
  while [ ! -e "$HOME/.r3go" ]; do sleep 0.05; done
fi
`, n)
	if err := os.WriteFile(rc, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(rc, uid, gid); err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{})
	go func() {
		for {
			if _, err := os.Stat(filepath.Join(u.HomeDir, ".r3paused")); err == nil {
				close(ch)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	goFile := filepath.Join(u.HomeDir, ".r3go")
	release = func() { _ = os.WriteFile(goFile, nil, 0o644) }
	t.Cleanup(release)
	return ch, release
}

// TestReview3CrashWindowLosesAccess: steps 4-5 leave authorized_keys
// holding only the new key while the new key exists only in this
// process's memory; the store still holds the old key until step 6. A
// gateway crash (or restart, OOM, kill) in that window leaves the target
// with no key the gateway has: the account is lost for good. The session
// before step 6 (lock_password) is paused to observe the window.
func TestReview3CrashWindowLosesAccess(t *testing.T) {
	g := newGateway(t)
	sshd, unixUser := review3Setup(t, g, true)
	old := g.signer(t, "web1", unixUser)
	writeHomeKeys(t, unixUser, authorizedLine(old.PublicKey())+" gateway")
	// Sessions: 1 read, 2 write both, 3 final write, 4 lock password.
	paused, release := review3PauseAt(t, unixUser, 4)
	done := make(chan error, 1)
	go func() {
		_, err := g.rot.Rotate(context.Background(), "web1", unixUser, "admin")
		done <- err
	}()
	select {
	case <-paused:
	case err := <-done:
		t.Fatalf("rotation ended before the window: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("rotation never reached the lock_password step")
	}
	// A crash now: the gateway restarts with what the store holds.
	if !canLogin(t, sshd, unixUser, g.signer(t, "web1", unixUser)) {
		t.Error("mid-rotation the key the gateway has stored no longer logs in: a crash here loses the account")
	}
	release()
	if err := <-done; err != nil {
		t.Logf("rotation: %v", err)
	}
}

// TestReview3ConcurrentGatewaysLoserRestoresStaleFile: two gateways
// sharing a store (Run's doc says this is safe) rotate one account. B
// logs in with the old key, A completes a whole rotation and stores its
// key, then B carries on over its open session, fails the final
// compare-and-store and "restores" the file it read at step 1: the old
// key and the intruder's. The stored key (A's) no longer logs in, and the
// intruder is back.
func TestReview3ConcurrentGatewaysLoserRestoresStaleFile(t *testing.T) {
	g := newGateway(t)
	sshd, unixUser := review3Setup(t, g, false)
	old := g.signer(t, "web1", unixUser)
	intruder := newKey(t)
	writeHomeKeys(t, unixUser, authorizedLine(old.PublicKey())+" gateway", authorizedLine(intruder.PublicKey())+" intruder")
	other, err := rotate.New(rotate.Config{Inventory: g.inv, Vault: g.vault, HostKeys: g.store,
		Audit: audit.New(g.store, slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	// The other gateway pauses before its step 2 write (its 2nd session).
	paused, release := review3PauseAt(t, unixUser, 2)
	done := make(chan error, 1)
	go func() {
		_, err := other.Rotate(context.Background(), "web1", unixUser, "schedule")
		done <- err
	}()
	select {
	case <-paused:
	case err := <-done:
		t.Fatalf("other rotation ended early: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("other rotation never paused")
	}
	if _, err := g.rot.Rotate(context.Background(), "web1", unixUser, "admin"); err != nil {
		t.Fatalf("first rotation: %v", err)
	}
	release()
	err = <-done
	t.Logf("losing rotation: %v", err)
	if !canLogin(t, sshd, unixUser, g.signer(t, "web1", unixUser)) {
		t.Error("after the losing rotation restored its stale file the stored key no longer logs in")
	}
	if canLogin(t, sshd, unixUser, intruder) {
		t.Error("after the losing rotation the intruder's key logs in again")
	}
}

// TestReview3IntruderKeyInOtherFile: sshd reads a second
// AuthorizedKeysFile. The rotation only rewrites ~/.ssh/authorized_keys
// and its step-5 check only tries the old gateway key, which was not in
// the other file, so it reports success ("authorized_keys holds only the
// new gateway key") while the intruder's key keeps logging in. The same
// holds for AuthorizedKeysCommand. Issue 6 point 11: after a takeover
// only the gateway can log in.
func TestReview3IntruderKeyInOtherFile(t *testing.T) {
	g := newGateway(t)
	sshd, unixUser := review3Setup(t, g, false, "AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys_extra")
	old := g.signer(t, "web1", unixUser)
	intruder := newKey(t)
	path := writeHomeKeys(t, unixUser, authorizedLine(old.PublicKey())+" gateway")
	extra := filepath.Join(filepath.Dir(path), "authorized_keys_extra")
	if err := os.WriteFile(extra, []byte(authorizedLine(intruder.PublicKey())+" intruder\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", unixUser, extra).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	if !canLogin(t, sshd, unixUser, intruder) {
		t.Fatal("setup: intruder key does not log in")
	}
	_, err := g.rot.Rotate(context.Background(), "web1", unixUser, "admin")
	if err == nil && canLogin(t, sshd, unixUser, intruder) {
		t.Error("rotation reported a takeover, but the intruder's key still logs in")
	}
}
