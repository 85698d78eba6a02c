package sshgate_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// startLongSession runs `ssh login command` in the background and returns
// once the command has printed its first line.
func (w *world) startLongSession(t *testing.T, login, command string) (*exec.Cmd, *strings.Builder, chan error) {
	t.Helper()
	args := append(w.opts(true), "-l", login, "127.0.0.1", command)
	cmd := exec.Command("ssh", args...)
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	first := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		first <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-first:
		if !strings.HasPrefix(line, "started") {
			t.Fatalf("session did not start: %q %s", line, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("session did not start in time: %s", stderr.String())
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, &stderr, done
}

func TestPolicyChangeEndsLiveSessions(t *testing.T) {
	w := newWorld(t, "exec")
	_, stderr, done := w.startLongSession(t, "alice~web1", "echo started; sleep 60")

	// Narrowing the policy to shell only revokes this exec session.
	objs, _ := resource.DecodeYAML([]byte(fmt.Sprintf(`
kind: Policy
name: alice-web1
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [%s]
actions: [shell]
`, w.unixUser)))
	if _, err := w.gw.inv.Apply(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("ssh exited 0 after its access was revoked")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session still running 10s after its policy was changed")
	}
	if !strings.Contains(stderr.String(), "portcullis: session ended: access revoked: access denied: alice is not granted exec on web1") {
		t.Fatalf("client saw %q", stderr.String())
	}
	w.gw.waitEvent(audit.SessionRevoke, nil)
	// The session's own end event is still written.
	w.gw.waitEvent(audit.SessionEnd, nil)
}

func TestDeletingPolicyEndsSessionAndRemovingKeyToo(t *testing.T) {
	w := newWorld(t, "exec")
	_, stderr, done := w.startLongSession(t, "alice~web1", "echo started; sleep 60")
	if err := w.gw.inv.Delete(context.Background(), resource.KindPolicy, "alice-web1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("session still running 10s after its policy was deleted")
	}
	if !strings.Contains(stderr.String(), "access revoked") {
		t.Fatalf("client saw %q", stderr.String())
	}

	// A fresh session, then alice's key is removed from her user.
	w.gw.apply(fmt.Sprintf(`
kind: Policy
name: alice-web1
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [%s]
actions: [exec]
`, w.unixUser))
	_, stderr, done = w.startLongSession(t, "alice~web1", "echo started; sleep 60")
	w.gw.apply("kind: User\nname: alice\nemail: alice@example.com\n")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("session still running 10s after the user's key was removed")
	}
	if !strings.Contains(stderr.String(), "identity or key was removed") {
		t.Fatalf("client saw %q", stderr.String())
	}
}

func TestCertificateTarget(t *testing.T) {
	w := newWorld(t, "exec")
	w.sshd.TrustUserCA(t, w.gw.ca.PublicKey())
	// A second unix user with no account: reachable only by certificate.
	certUser := w.sshd.AddUser(t)
	w.gw.apply(fmt.Sprintf(`
kind: Target
name: certhost
address: %s
host_key: %q
auth: certificate
---
kind: Policy
name: alice-cert
type: target-access
subjects: {users: [alice]}
targets: {names: [certhost]}
target_users: [%s]
actions: [exec]
`, w.sshd.Addr, authorizedLine(w.sshd.HostKey), certUser))
	out, errOut, code := w.ssh("", "alice~certhost", nil, "id -un")
	if code != 0 || strings.TrimSpace(out) != certUser {
		t.Fatalf("certificate login: code %d out %q err %q", code, out, errOut)
	}
	// sshd logged the certificate with our key ID.
	if !strings.Contains(w.sshd.Log(), "ID portcullis:alice:") {
		t.Fatalf("sshd log lacks the certificate key ID:\n%s", w.sshd.Log())
	}
}

func TestServiceAccountKeepsItsKey(t *testing.T) {
	w := newWorld(t, "exec")
	script := testenv.NewClientKey(t, w.clientDir)
	w.gw.apply(fmt.Sprintf(`
kind: ServiceAccount
name: scriptuser
owner: alice
ssh_keys: [%q]
---
kind: Policy
name: script-web1
type: target-access
subjects: {service_accounts: [scriptuser]}
targets: {names: [web1]}
target_users: [%s]
actions: [exec]
source_cidrs: [127.0.0.0/8]
autologin: true
`, script.AuthorizedKey, w.unixUser))
	args := testenv.SSHArgs(w.clientDir, script, w.gw.addr, w.gw.hostKey)
	args = append(args, "-l", "scriptuser~"+w.unixUser+"~web1", "127.0.0.1", "echo from-script")
	out, errOut, code := testenv.Run(t, 30*time.Second, "ssh", args...)
	if code != 0 || out != "from-script\n" {
		t.Fatalf("service account: code %d out %q err %q", code, out, errOut)
	}
	w.gw.waitEvent(audit.SessionStart, func(ev store.AuditEvent) bool { return ev.User == "scriptuser" && ev.Policy == "script-web1" })
}

// TestDynamicForward drives ssh -D with a minimal SOCKS5 client.
func TestDynamicForward(t *testing.T) {
	w := newWorld(t, "tunnel, exec")
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	port := testenv.FreePort(t)
	args := append(w.opts(true), "-l", "alice~web1", "-o", "ExitOnForwardFailure=yes",
		"-D", fmt.Sprintf("127.0.0.1:%d", port), "127.0.0.1", "sleep 10")
	cmd := exec.Command("ssh", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var c net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("-D port never opened: %v", err)
		}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	ta := echo.Addr().(*net.TCPAddr)
	// SOCKS5: no-auth greeting, then CONNECT to an IPv4 address.
	req := []byte{5, 1, 0, 5, 1, 0, 1}
	req = append(req, ta.IP.To4()...)
	req = append(req, byte(ta.Port>>8), byte(ta.Port))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 2+10)
	if _, err := io.ReadFull(c, reply); err != nil || reply[0] != 5 || reply[1] != 0 || reply[3] != 0 {
		t.Fatalf("SOCKS reply %v, %v", reply, err)
	}
	msg := []byte("through -D\n")
	c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("-D echo: %q %v", got, err)
	}
}
