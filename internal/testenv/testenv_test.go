package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// clientTimeout bounds every client run; a healthy one takes well under
// a second.
const clientTimeout = 30 * time.Second

// target is a started sshd with one user whose key is authorized.
type target struct {
	sshd *SSHD
	user string
	dir  string // client-side dir: keys, known_hosts
	key  *ClientKey
}

func newTarget(t *testing.T, opts ...string) *target {
	t.Helper()
	Require(t, "ssh")
	s := StartSSHD(t, opts...)
	user := s.AddUser(t)
	dir := ShortTempDir(t)
	key := NewClientKey(t, dir)
	s.AuthorizeKey(t, user, key.Public)
	return &target{sshd: s, user: user, dir: dir, key: key}
}

// ssh runs the real ssh client as tg.user with key.
func (tg *target) ssh(t *testing.T, key *ClientKey, command string) (string, string, int) {
	t.Helper()
	args := append(SSHArgs(tg.dir, key, tg.sshd.Addr, tg.sshd.HostKey), tg.user+"@127.0.0.1", command)
	return Run(t, clientTimeout, "ssh", args...)
}

func TestSSHExecOutputAndExitStatus(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)

	stdout, stderr, code := tg.ssh(t, tg.key, "echo hello; id -un")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if want := "hello\n" + tg.user + "\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}

	// The exit status travels back through sshd's exit-status request.
	if _, stderr, code := tg.ssh(t, tg.key, "exit 3"); code != 3 {
		t.Errorf("exit 3: got code %d, stderr:\n%s", code, stderr)
	}

	// The home directory is the private one below Dir, not /home.
	stdout, _, _ = tg.ssh(t, tg.key, "pwd")
	if want := filepath.Join(tg.sshd.Dir, "home", tg.user); strings.TrimSpace(stdout) != want {
		t.Errorf("pwd = %q, want %q", stdout, want)
	}

	// PermitTTY yes: a forced terminal works even without a local one.
	args := append(SSHArgs(tg.dir, tg.key, tg.sshd.Addr, tg.sshd.HostKey), "-tt", tg.user+"@127.0.0.1", "tty")
	if stdout, stderr, code := Run(t, clientTimeout, "ssh", args...); code != 0 || !strings.HasPrefix(stdout, "/dev/pts/") {
		t.Errorf("ssh -tt tty: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}

	// The log is ours and says which key was accepted.
	if log := tg.sshd.Log(); !strings.Contains(log, "Accepted publickey for "+tg.user) {
		t.Errorf("sshd log lacks the accepted login:\n%s", log)
	}
}

func TestUnauthorizedKeyRefused(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	other := NewClientKey(t, tg.dir)

	stdout, stderr, code := tg.ssh(t, other, "echo should-not-run")
	if code != 255 {
		t.Errorf("exit %d, want 255 (ssh's own failure)", code)
	}
	if strings.Contains(stdout, "should-not-run") {
		t.Errorf("command ran with an unauthorized key")
	}
	if !strings.Contains(stderr, "Permission denied") {
		t.Errorf("stderr = %q, want a permission-denied error", stderr)
	}
	// A wrong host key is refused too: strict checking is on.
	wrong := NewClientKey(t, tg.dir) // any key not the server's
	args := append(SSHArgs(tg.dir, tg.key, tg.sshd.Addr, wrong.Public), tg.user+"@127.0.0.1", "true")
	if _, stderr, code := Run(t, clientTimeout, "ssh", args...); code != 255 {
		t.Errorf("wrong host key: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestUserCertificate(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	_, caPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	tg.sshd.TrustUserCA(t, ca.PublicKey())
	// A key that is not in authorized_keys, so only the certificate can
	// get it in.
	key := NewClientKey(t, tg.dir)

	dial := func(cert *ssh.Certificate) (string, error) {
		certSigner, err := ssh.NewCertSigner(cert, key.Signer)
		if err != nil {
			return "", err
		}
		client, err := ssh.Dial("tcp", tg.sshd.Addr, &ssh.ClientConfig{
			User:            tg.user,
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(certSigner)},
			HostKeyCallback: ssh.FixedHostKey(tg.sshd.HostKey),
			Timeout:         10 * time.Second,
		})
		if err != nil {
			return "", err
		}
		defer client.Close()
		sess, err := client.NewSession()
		if err != nil {
			return "", err
		}
		defer sess.Close()
		out, err := sess.Output("id -un")
		return string(out), err
	}

	out, err := dial(NewUserCert(t, ca, key.Public, tg.user))
	if err != nil {
		t.Fatalf("certificate login: %v\nsshd log:\n%s", err, tg.sshd.Log())
	}
	if out != tg.user+"\n" {
		t.Errorf("id -un = %q, want %q", out, tg.user)
	}

	// Without a principals file the principal must be the user name.
	if _, err := dial(NewUserCert(t, ca, key.Public, "someone-else")); err == nil {
		t.Errorf("certificate for another principal was accepted")
	}

	// A certificate from an untrusted CA is refused.
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewSignerFromKey(otherPriv)
	if _, err := dial(NewUserCert(t, other, key.Public, tg.user)); err == nil {
		t.Errorf("certificate from an untrusted CA was accepted")
	}

	// The real client picks up Path-cert.pub next to the key.
	key.WriteCertificate(t, NewUserCert(t, ca, key.Public, tg.user))
	if stdout, stderr, code := tg.ssh(t, key, "id -un"); code != 0 || stdout != tg.user+"\n" {
		t.Errorf("ssh with certificate: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

func TestFileTransferClients(t *testing.T) {
	t.Parallel()
	Require(t, "scp", "sftp", "rsync")
	// Also proves that an opt replaces the same-keyword default instead of
	// making sshd fail on a duplicate Subsystem, and that Match blocks may
	// follow.
	tg := newTarget(t, "Subsystem sftp /usr/lib/openssh/sftp-server", "Match User nobody", "  PermitTTY no")
	opts := SSHOptions(tg.dir, tg.key, tg.sshd.Addr, tg.sshd.HostKey)
	home := filepath.Join(tg.sshd.Dir, "home", tg.user)
	remote := tg.user + "@127.0.0.1:"

	src := filepath.Join(tg.dir, "payload.txt")
	payload := "portcullis payload\n"
	if err := os.WriteFile(src, []byte(payload), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(tool, name string) {
		t.Helper()
		got, err := os.ReadFile(filepath.Join(home, name))
		if err != nil || string(got) != payload {
			t.Errorf("%s: remote file %q = %q, %v", tool, name, got, err)
		}
	}

	args := append(append([]string{}, opts...), src, remote+"via-scp.txt")
	if _, stderr, code := Run(t, clientTimeout, "scp", args...); code != 0 {
		t.Errorf("scp: exit %d: %s", code, stderr)
	}
	check("scp", "via-scp.txt")

	args = append(append([]string{}, opts...), "-b", "-", tg.user+"@127.0.0.1")
	if _, stderr, code := RunInput(t, clientTimeout, "put "+src+" via-sftp.txt\n", "sftp", args...); code != 0 {
		t.Errorf("sftp: exit %d: %s", code, stderr)
	}
	check("sftp", "via-sftp.txt")

	rsh := RsyncShell(tg.dir, tg.key, tg.sshd.Addr, tg.sshd.HostKey)
	if _, stderr, code := Run(t, clientTimeout, "rsync", "-e", rsh, src, remote+"via-rsync.txt"); code != 0 {
		t.Errorf("rsync: exit %d: %s", code, stderr)
	}
	check("rsync", "via-rsync.txt")
}

func TestTwoServersSharedClientDir(t *testing.T) {
	t.Parallel()
	a, b := newTarget(t), newTarget(t)
	if a.sshd.Addr == b.sshd.Addr || a.user == b.user {
		t.Fatalf("collision: %s/%s vs %s/%s", a.sshd.Addr, a.user, b.sshd.Addr, b.user)
	}
	// One client dir, two servers: each gets its own known_hosts file.
	b.sshd.AuthorizeKey(t, b.user, a.key.Public)
	args := append(SSHArgs(a.dir, a.key, b.sshd.Addr, b.sshd.HostKey), b.user+"@127.0.0.1", "id -un")
	if stdout, stderr, code := Run(t, clientTimeout, "ssh", args...); code != 0 || stdout != b.user+"\n" {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	if stdout, stderr, code := a.ssh(t, a.key, "id -un"); code != 0 || stdout != a.user+"\n" {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

func TestBuildConfig(t *testing.T) {
	cfg := buildConfig(2222, "/d/hk", "/d", false, []string{
		"PermitTTY no",
		"LogLevel=DEBUG3",
		"Subsystem other /bin/other",
		"Match User x",
		"  AllowTcpForwarding no",
	})
	for _, want := range []string{"\nPermitTTY no\n", "\nLogLevel=DEBUG3\n", "\nSubsystem sftp internal-sftp\n",
		"\nSubsystem other /bin/other\n", "\nAllowTcpForwarding yes\n", "\nMatch User x\n  AllowTcpForwarding no\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	for _, bad := range []string{"PermitTTY yes", "LogLevel VERBOSE", "PerSourcePenalties"} {
		if strings.Contains(cfg, bad) {
			t.Errorf("config still has %q:\n%s", bad, cfg)
		}
	}
	if strings.Index(cfg, "Match") < strings.LastIndex(cfg, "AllowTcpForwarding yes") {
		t.Errorf("Match block before a global option:\n%s", cfg)
	}
}

// fakeTB records what Require's policy did without ending the goroutine.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
}

func TestRequirePolicy(t *testing.T) {
	const missing = "portcullis-no-such-program"
	for _, ci := range []bool{false, true} {
		f := &fakeTB{TB: t}
		require(f, ci, "sh", missing)
		if f.skipped == ci || f.failed != ci || !strings.Contains(f.msg, missing) || strings.Contains(f.msg, "sh,") {
			t.Errorf("ci=%v: skipped=%v failed=%v msg=%q", ci, f.skipped, f.failed, f.msg)
		}
		f = &fakeTB{TB: t}
		requireRoot(f, ci, 1000)
		if f.skipped == ci || f.failed != ci || !strings.Contains(f.msg, "root") {
			t.Errorf("root ci=%v: skipped=%v failed=%v msg=%q", ci, f.skipped, f.failed, f.msg)
		}
	}
	f := &fakeTB{TB: t}
	require(f, true, "sh", "sshd") // sshd is found in sbin even off PATH
	requireRoot(f, true, 0)
	if f.skipped || f.failed {
		t.Errorf("present prerequisites: %q", f.msg)
	}
}

func TestRunTimeout(t *testing.T) {
	f := &recordTB{TB: t}
	start := time.Now()
	_, _, code := Run(f, 200*time.Millisecond, "sleep", "10")
	if code != -1 || !strings.Contains(f.errs, "timed out") {
		t.Errorf("code %d, errors %q", code, f.errs)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}
}

type recordTB struct {
	testing.TB
	errs string
}

func (r *recordTB) Helper()                        {}
func (r *recordTB) Logf(string, ...any)            {}
func (r *recordTB) Errorf(format string, a ...any) { r.errs += fmt.Sprintf(format, a...) }

func TestShortTempDir(t *testing.T) {
	d := ShortTempDir(t)
	// The whole point: room for a socket name below it.
	if len(d) > 40 {
		t.Errorf("ShortTempDir %q is %d bytes", d, len(d))
	}
}
