package sshgate_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/testenv"
)

// homeAuthorize makes ~username/.ssh/authorized_keys hold pub, owned by
// the user, for a target sshd that reads keys from home directories.
func homeAuthorize(t *testing.T, username string, pub ssh.PublicKey) {
	t.Helper()
	u, err := user.Lookup(username)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir := filepath.Join(u.HomeDir, ".ssh")
	path := filepath.Join(dir, "authorized_keys")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(authorizedLine(pub)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, path} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

// sudoersFile grants username passwordless sudo until the test ends.
func sudoersFile(t *testing.T, username string) {
	t.Helper()
	path := "/etc/sudoers.d/" + username
	if err := os.WriteFile(path, []byte(username+" ALL=(ALL) NOPASSWD: ALL\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
}

// provisionedName returns a fresh login name with the test prefix, and
// removes that login, its home and its sudoers rule when the test ends,
// whether or not the gateway created them.
func provisionedName(t *testing.T) string {
	t.Helper()
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	name := testenv.UserPrefix + hex.EncodeToString(rnd[:])
	t.Cleanup(func() {
		os.Remove("/etc/sudoers.d/portcullis-" + name)
		if _, err := user.Lookup(name); err != nil {
			return
		}
		if out, err := exec.Command("userdel", "--remove", "--force", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v %s", name, err, out)
		}
	})
	return name
}

// TestProvision connects subjects whose own login does not exist on the
// target: a policy with provision: true has the gateway create it through
// the target's provision account (a sudo user), with the policy's sudoers
// rule; a second connection finds it and creates nothing.
func TestProvision(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", "sudo", "visudo", "useradd", "userdel", testenv.SSHDPath)
	tests := []struct {
		name      string
		sudoers   string
		provision bool
		command   string
		wantOut   string
		wantCode  int
	}{
		{name: "with sudoers", provision: true, sudoers: "ALL=(ALL) NOPASSWD: ALL",
			command: "id -un; sudo -n true && echo sudo-ok", wantOut: "{name}\nsudo-ok\n"},
		{name: "without sudoers", provision: true,
			command: "id -un; sudo -n true 2>/dev/null || echo no-sudo", wantOut: "{name}\nno-sudo\n"},
		// visudo refuses the rule: nothing is created, the client is
		// refused, the failure audited.
		{name: "sudoers refused", provision: true, sudoers: "ALL=(ALL) BOGUS: ALL", command: "true", wantCode: 1},
		// Without provision the login is not usable: the engine refuses.
		{name: "not provisioned", command: "true", wantCode: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sshd := testenv.StartSSHD(t, "AuthorizedKeysFile .ssh/authorized_keys")
			gw := startGateway(t)
			admin := sshd.AddUser(t)
			sudoersFile(t, admin)
			name := provisionedName(t)
			clientDir := testenv.ShortTempDir(t)
			client := testenv.NewClientKey(t, clientDir)
			policyExtra := ""
			if tc.provision {
				policyExtra = "provision: true\n"
			}
			if tc.sudoers != "" {
				policyExtra += fmt.Sprintf("sudoers: %q\n", tc.sudoers)
			}
			gw.apply(fmt.Sprintf(`
kind: User
name: %s
ssh_keys: [%q]
---
kind: Target
name: web1
address: %s
host_key: %q
provision_account: %s
---
kind: Account
name: %s
target: web1
---
kind: Policy
name: own-login
type: target-access
subjects: {users: [%s]}
targets: {names: [web1]}
target_users: ["{username}"]
actions: [exec]
%s`, name, client.AuthorizedKey, sshd.Addr, authorizedLine(sshd.HostKey), admin, admin, name, policyExtra))
			homeAuthorize(t, admin, gw.accountPub("web1", admin))
			w := &world{gw: gw, sshd: sshd, client: client, clientDir: clientDir}

			for attempt := 1; attempt <= 2; attempt++ {
				out, errOut, code := w.ssh("", name+"~web1", nil, tc.command)
				want := strings.ReplaceAll(tc.wantOut, "{name}", name)
				if code != tc.wantCode || (tc.wantCode == 0 && out != want) {
					t.Fatalf("attempt %d: exit %d, stdout %q, stderr %q; want exit %d, stdout %q", attempt, code, out, errOut, tc.wantCode, want)
				}
			}
			evs := gw.events(audit.AccountProvision)
			if !tc.provision {
				if len(evs) != 0 {
					t.Fatalf("provision events without provision: %+v", evs)
				}
				if _, err := user.Lookup(name); err == nil {
					t.Fatalf("login %s created without provision: true", name)
				}
				return
			}
			if tc.wantCode != 0 {
				if len(evs) == 0 || evs[0].Outcome != audit.Failure || !strings.Contains(evs[0].Message, "visudo") {
					t.Fatalf("account.provision events: %+v, want a failure naming visudo", evs)
				}
				if _, err := user.Lookup(name); err == nil {
					t.Fatalf("login %s created although its sudoers rule was refused", name)
				}
				return
			}
			if len(evs) != 1 || evs[0].Outcome != audit.Success || evs[0].User != name || evs[0].Account != name {
				t.Fatalf("account.provision events: %+v, want one success", evs)
			}
			if gw.inv.Snapshot().Account("web1", name) == nil {
				t.Fatal("no account web1/" + name + " after provisioning")
			}
			checkSudoersFile(t, name, tc.sudoers)
		})
	}
}

func checkSudoersFile(t *testing.T, name, rule string) {
	t.Helper()
	fi, err := os.Stat("/etc/sudoers.d/portcullis-" + name)
	if rule == "" {
		if err == nil {
			t.Fatal("a sudoers file was written without a sudoers rule")
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o440 {
		t.Errorf("sudoers file mode %v, want 0440", fi.Mode().Perm())
	}
}
