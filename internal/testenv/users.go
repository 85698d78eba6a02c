package testenv

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
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// UserPrefix starts the name of every user AddUser creates, so leftovers
// from a crashed run are easy to find (getent passwd | grep ^pct) and
// cannot be mistaken for real accounts.
const UserPrefix = "pct"

// accountMu serializes account changes inside this process. shadow's
// tools lock /etc/passwd and fail instead of waiting; runAccountCmd also
// retries, which covers other test packages running in parallel.
var accountMu sync.Mutex

// runAccountCmd runs useradd/userdel and retries while another process
// holds the passwd/group/shadow locks.
func runAccountCmd(name string, args ...string) (string, int, error) {
	accountMu.Lock()
	defer accountMu.Unlock()
	// Resolve via LookBinary: a PATH without /usr/sbin is common.
	if p, ok := LookBinary(name); ok {
		name = p
	}
	deadline := time.Now().Add(15 * time.Second)
	for delay := 20 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		out, err := exec.Command(name, args...).CombinedOutput()
		code := 0
		if err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				return string(out), -1, err
			}
			code = ee.ExitCode()
		}
		if code == 0 || !strings.Contains(strings.ToLower(string(out)), "lock") || time.Now().After(deadline) {
			return string(out), code, nil
		}
		time.Sleep(delay)
	}
}

// AddUser creates a unique unix user for the test ("pct" + random hex,
// home under Dir/home, shell /bin/bash) and removes it, its home and its
// processes when the test ends.
//
// The password field is set to '*' (no password can match) rather than
// useradd's default '!' (set with useradd --password, the same field
// usermod -p writes, so there is no moment the account is locked): with
// UsePAM no, sshd treats '!' as a locked
// account and refuses even public-key logins.
func (s *SSHD) AddUser(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	Require(t, "useradd", "userdel")
	for attempt := 0; ; attempt++ {
		var rnd [4]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			t.Fatalf("AddUser: %v", err)
		}
		name := UserPrefix + hex.EncodeToString(rnd[:])
		home := filepath.Join(s.Dir, "home", name)
		out, code, err := runAccountCmd("useradd",
			"--create-home", "--home-dir", home,
			"--shell", "/bin/bash",
			"--password", "*",
			"--comment", "portcullis test user",
			name)
		if err != nil {
			t.Fatalf("AddUser: useradd: %v", err)
		}
		// 9: the name (or a same-named group left by a crashed run) is
		// taken; a fresh random name fixes that.
		if code == 9 && attempt < 5 {
			continue
		}
		if code != 0 {
			t.Fatalf("AddUser: useradd %s: exit %d: %s", name, code, out)
		}
		t.Cleanup(func() { removeUser(t, name) })
		return name
	}
}

// removeUser kills the user's processes first: userdel refuses a user
// that still runs something, and a leftover shell would keep the test's
// sshd session (and its output pipes) alive.
func removeUser(t testing.TB, name string) {
	t.Helper()
	if u, err := user.Lookup(name); err == nil {
		if uid, err := strconv.Atoi(u.Uid); err == nil {
			killUserProcesses(uid)
		}
	}
	// -f: remove even if a dying process still shows up under the uid.
	out, code, err := runAccountCmd("userdel", "--remove", "--force", name)
	// 6: already gone. 12: home not removable; the temp dir cleanup
	// deletes it anyway, and the account itself is gone.
	if err != nil || (code != 0 && code != 6 && code != 12) {
		t.Errorf("removeUser %s: userdel exit %d: %v %s", name, code, err, out)
	}
}

// killUserProcesses SIGKILLs every live process running as uid until none
// is left (bounded). It reads /proc itself rather than using pkill -u
// because it must skip zombies: sshd's session processes get reparented
// to PID 1, which in containers may reap them late or never, and pkill
// would keep "finding" them.
func killUserProcesses(uid int) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := userPIDs(uid)
		if len(pids) == 0 || time.Now().After(deadline) {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// userPIDs lists processes that are not zombies and whose real or
// effective uid is uid.
func userPIDs(uid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := strconv.Itoa(uid)
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue // exited meanwhile
		}
		var state string
		var uids []string
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "State:"); ok {
				state = strings.TrimSpace(v)
			} else if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				uids = strings.Fields(v) // real, effective, saved, fs
			}
		}
		if strings.HasPrefix(state, "Z") || strings.HasPrefix(state, "X") || len(uids) < 2 {
			continue
		}
		if uids[0] == want || uids[1] == want {
			out = append(out, pid)
		}
	}
	return out
}

// AuthorizeKey lets pub log in as user: it appends the key to the user's
// authorized keys file under Dir (never the real ~/.ssh).
func (s *SSHD) AuthorizeKey(t testing.TB, user string, pub ssh.PublicKey) {
	t.Helper()
	s.AuthorizeKeyLine(t, user, strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n"))
}

// AuthorizeKeyLine appends one authorized_keys line, which may carry
// options (`restrict,command="..." ssh-ed25519 AAAA...`, or
// `cert-authority ...`), for tests of what the target enforces.
//
// sshd opens the file as the target user, so the file is owned by that
// user with mode 0600, and Dir and Dir/authorized_keys are 0755.
func (s *SSHD) AuthorizeKeyLine(t testing.TB, username, line string) {
	t.Helper()
	u, err := user.Lookup(username)
	if err != nil {
		t.Fatalf("AuthorizeKey: %v", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		t.Fatalf("AuthorizeKey: user %s has non-numeric uid %q / gid %q", username, u.Uid, u.Gid)
	}
	path := filepath.Join(s.Dir, "authorized_keys", username)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := appendLine(path, line, 0o600); err != nil {
		t.Fatalf("AuthorizeKey: %v", err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatalf("AuthorizeKey: %v", err)
	}
}

// TrustUserCA makes sshd accept user certificates signed by ca. It
// appends to the TrustedUserCAKeys file, which sshd re-reads on every
// authentication, so it works on a running server and several CAs can be
// trusted. With AuthorizedPrincipalsFile none, a certificate is accepted
// for a user only if one of its principals is exactly that user's name.
func (s *SSHD) TrustUserCA(t testing.TB, ca ssh.PublicKey) {
	t.Helper()
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(ca)), "\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := appendLine(filepath.Join(s.Dir, "ca.pub"), line, 0o644); err != nil {
		t.Fatalf("TrustUserCA: %v", err)
	}
}

func appendLine(path, line string, perm os.FileMode) error {
	if strings.ContainsAny(line, "\r\n") {
		return fmt.Errorf("%s: line must not contain a newline: %q", path, line)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, perm)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
