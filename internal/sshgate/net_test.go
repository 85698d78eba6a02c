package sshgate_test

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

// echoServer listens on addr ("127.0.0.2:0") and echoes every connection
// until the test ends; it returns the address it listens on.
func echoServer(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// addTarget adds target name on sshd with a fresh unix user the gateway
// logs in as (an account, or by certificate when cert is set) and a policy
// granting alice actions there; extra is more YAML for the policy. It
// returns the unix user.
func (w *world) addTarget(t *testing.T, name string, sshd *testenv.SSHD, cert bool, actions, extra string) string {
	t.Helper()
	u := sshd.AddUser(t)
	auth, account := "", fmt.Sprintf("---\nkind: Account\nname: %s\ntarget: %s\n", u, name)
	if cert {
		auth, account = "auth: certificate\n", ""
		sshd.TrustUserCA(t, w.gw.ca.PublicKey())
	}
	w.gw.apply(fmt.Sprintf(`
kind: Target
name: %s
address: %s
host_key: %q
%s%s---
kind: Policy
name: alice-%s
type: target-access
subjects: {users: [alice]}
targets: {names: [%s]}
target_users: [%s]
actions: [%s]
%s`, name, sshd.Addr, authorizedLine(sshd.HostKey), auth, account, name, name, u, actions, extra))
	if !cert {
		sshd.AuthorizeKey(t, u, w.gw.accountPub(name, u))
	}
	return u
}

// TestTunnelDestinations: without tunnels.to a tunnel reaches only the
// target host itself; with it, only what it lists. Everything else, in any
// spelling, is refused with one line and audited. Before, any destination
// the target could reach was allowed (another host's services, the
// gateway's own HTTPS port).
func TestTunnelDestinations(t *testing.T) {
	w := newWorld(t, "tunnel, exec")
	self := echoServer(t, "127.0.0.1:0")  // on the target host itself
	other := echoServer(t, "127.0.0.2:0") // another host, as the target sees it
	_, otherPort, _ := net.SplitHostPort(other)

	tunnel := func(dest string) (string, string, int) {
		return w.ssh("ping\n", "alice~web1", []string{"-W", dest})
	}
	refused := func(dest, why string) {
		t.Helper()
		out, errOut, code := tunnel(dest)
		if code == 0 || out != "" || !strings.Contains(errOut, why) {
			t.Fatalf("-W %s: exit %d out %q stderr %q; want refused with %q", dest, code, out, errOut, why)
		}
		if n := len(portcullisLines(errOut)); n != 1 {
			t.Fatalf("-W %s: %d lines of ours, want one: %q", dest, n, errOut)
		}
		w.gw.waitEvent(audit.RequestDeny, func(ev store.AuditEvent) bool {
			return ev.Detail["action"] == "tunnel" && ev.Detail["command"] == dest
		})
	}
	reached := func(dest string) {
		t.Helper()
		if out, errOut, code := tunnel(dest); code != 0 || out != "ping\n" {
			t.Fatalf("-W %s: exit %d out %q stderr %q; want the echo", dest, code, out, errOut)
		}
	}

	// No tunnels.to: the target host itself only.
	reached(self)
	_, selfPort, _ := net.SplitHostPort(self)
	reached("localhost:" + selfPort)
	refused(other, "reaches only web1 itself")

	// tunnels.to lists the other host's port only.
	w.gw.apply(fmt.Sprintf(`
kind: Policy
name: alice-web1
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [%s]
actions: [tunnel, exec]
tunnels: {to: [%q, "db.internal:5432"]}
`, w.unixUser, other))
	reached(other)
	refused(self, "not in tunnels.to")        // the target itself is no longer listed
	refused(w.sshd.Addr, "not in tunnels.to") // nor its sshd
	for _, spelled := range []string{"0x7f.2", "2130706434", "127.2", "0177.0.0.2"} {
		refused(spelled+":"+otherPort, "non-standard form")
	}
	// Ports ssh will not send: through a raw client.
	raw, err := ssh.Dial("tcp", w.gw.addr, &ssh.ClientConfig{User: "alice~web1", Auth: []ssh.AuthMethod{ssh.PublicKeys(w.client.Signer)},
		HostKeyCallback: ssh.FixedHostKey(w.gw.hostKey), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{0, 65536 + 22} {
		if c, err := raw.DialTCP("tcp", nil, &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: p}); err == nil || !strings.Contains(err.Error(), "port") {
			if c != nil {
				c.Close()
			}
			t.Fatalf("direct-tcpip to port %d: %v, want refused", p, err)
		}
	}
	// A unix socket on the target (ssh -L PORT:/path, direct-streamlocal)
	// is no TCP destination: refused.
	if c, err := raw.Dial("unix", "/run/sshd.pid"); err == nil {
		c.Close()
		t.Fatal("direct-streamlocal opened")
	}
	raw.Close()
	refused("localhost:"+otherPort, "not in tunnels.to")
	refused("LOCALHOST.:"+otherPort, "not in tunnels.to")

	// -L takes the same path: the forward opens, the channel is refused.
	port := testenv.FreePort(t)
	args := append(w.opts(true), "-l", "alice~web1", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:%s", port, self), "127.0.0.1", "sleep 10")
	cmd := exec.Command("ssh", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var fwd net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		if fwd, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("-L port never opened: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer fwd.Close()
	_ = fwd.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := fwd.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Fatalf("-L to a destination not listed: read %d, %v; want the forward closed", n, err)
	}
	w.gw.waitEvent(audit.RequestDeny, func(ev store.AuditEvent) bool {
		return ev.Detail["action"] == "tunnel" && ev.Detail["command"] == self
	})
}

// TestEnvLimitedByName: only LANG, LC_*, TERM, TZ and COLORTERM pass to
// the target by default, even when the target itself accepts any name.
// LD_PRELOAD and BASH_ENV used to reach it.
func TestEnvLimitedByName(t *testing.T) {
	w := newWorld(t, "exec")
	sshd := testenv.StartSSHD(t, "AcceptEnv *")
	w.addTarget(t, "envhost", sshd, false, "exec", "")
	out, errOut, code := w.ssh("", "alice~envhost",
		[]string{"-o", "SetEnv=LD_PRELOAD=/nonexistent.so BASH_ENV=/nonexistent LANG=C.UTF-8 LC_FOO=x TZ=UTC FOO=bar"},
		`echo "[${LD_PRELOAD-unset}][${BASH_ENV-unset}][${FOO-unset}][$LANG][$LC_FOO][$TZ]"`)
	if want := "[unset][unset][unset][C.UTF-8][x][UTC]\n"; code != 0 || out != want {
		t.Fatalf("exit %d out %q stderr %q; want %q", code, out, errOut, want)
	}
}

// TestCertificateExtensionsFollowGrants: the certificate the gateway signs
// for a target carries permit-port-forwarding only when the subject is
// granted tunnel there, so the target's sshd itself refuses forwarding to
// a subject without it, whatever the gateway does. The certificate is read
// from the target's side (ExposeAuthInfo), then one with the same
// extensions is tried directly against sshd.
func TestCertificateExtensionsFollowGrants(t *testing.T) {
	w := newWorld(t, "exec")
	sshd := testenv.StartSSHD(t, "ExposeAuthInfo yes")
	u := w.addTarget(t, "certhost", sshd, true, "exec", "")
	echo := echoServer(t, "127.0.0.1:0")

	// The certificate the gateway used, as the target saw it.
	usedCert := func(flags ...string) *ssh.Certificate {
		t.Helper()
		out, errOut, code := w.ssh("", "alice~certhost", flags, `cat "$SSH_USER_AUTH"`)
		if code != 0 {
			t.Fatalf("exit %d stderr %q", code, errOut)
		}
		line := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "publickey "))
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			t.Fatalf("SSH_USER_AUTH %q: %v", out, err)
		}
		cert, ok := pub.(*ssh.Certificate)
		if !ok {
			t.Fatalf("the gateway logged in with a plain key: %q", out)
		}
		return cert
	}
	cert := usedCert()
	for _, ext := range []string{"permit-port-forwarding", "permit-agent-forwarding", "permit-X11-forwarding", "permit-user-rc"} {
		if _, ok := cert.Extensions[ext]; ok {
			t.Fatalf("exec-only grant: certificate has %s (extensions %v)", ext, cert.Extensions)
		}
	}
	if _, ok := cert.Extensions["permit-pty"]; !ok {
		t.Fatalf("exec grant: certificate lacks permit-pty (ssh -t); extensions %v", cert.Extensions)
	}

	// Bypass the gateway: log in to sshd with a certificate carrying the
	// same extensions and ask for a forward. sshd refuses it.
	signer, err := w.gw.ca.NewEphemeralCertSigner(u, "bypass", time.Minute, vault.UserCertPermits{
		PTY: has(cert, "permit-pty"), PortForwarding: has(cert, "permit-port-forwarding")})
	if err != nil {
		t.Fatal(err)
	}
	direct, err := ssh.Dial("tcp", sshd.Addr, &ssh.ClientConfig{User: u, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(sshd.HostKey), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if c, err := direct.Dial("tcp", echo); err == nil {
		c.Close()
		t.Fatal("sshd opened a forward for a certificate without permit-port-forwarding")
	}

	// Granted tunnel too: the certificate permits forwarding, even on a
	// connection whose first request was an exec (one upstream, dialed
	// once), and a forward opened after it works.
	w.gw.apply(fmt.Sprintf(`
kind: Policy
name: alice-certhost
type: target-access
subjects: {users: [alice]}
targets: {names: [certhost]}
target_users: [%s]
actions: [exec, tunnel]
`, u))
	port := testenv.FreePort(t)
	cert = usedCert("-L", fmt.Sprintf("127.0.0.1:%d:%s", port, echo))
	if !has(cert, "permit-port-forwarding") {
		t.Fatalf("tunnel grant: certificate lacks permit-port-forwarding; extensions %v", cert.Extensions)
	}
	args := append(w.opts(true), "-l", "alice~certhost", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:%s", port, echo), "127.0.0.1", "echo ready; sleep 10")
	cmd := exec.Command("ssh", args...)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// The exec dialed the target first; then the forward.
	if _, err := io.ReadFull(stdout, make([]byte, len("ready\n"))); err != nil {
		t.Fatalf("exec did not start: %v", err)
	}
	fwd, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	_ = fwd.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fwd.Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 3)
	if _, err := io.ReadFull(fwd, got); err != nil || string(got) != "hi\n" {
		t.Fatalf("forward after exec on a certificate target: %q, %v", got, err)
	}
}

func has(cert *ssh.Certificate, ext string) bool {
	_, ok := cert.Extensions[ext]
	return ok
}
