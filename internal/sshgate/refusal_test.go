package sshgate_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/sshgate"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// Every refusal gives the client one clear line and a non-zero exit, and
// writes an audit event.
func TestRefusals(t *testing.T) {
	w := newWorld(t, "exec")
	closed := testenv.FreePort(t)
	second := w.sshd.AddUser(t)
	w.gw.apply(fmt.Sprintf(`
kind: Target
name: web2
address: %s
host_key: %q
---
kind: Target
name: down
address: 127.0.0.1:%d
---
kind: Target
name: liar
address: %s
host_key: %q
---
kind: Account
name: %s
target: down
---
kind: Account
name: %s
target: liar
---
kind: Account
name: %s
target: web1
---
kind: Target
name: multi
address: %s
host_key: %q
---
kind: Account
name: %s
target: multi
---
kind: Account
name: %s
target: multi
---
kind: Policy
name: alice-more
type: target-access
subjects: {users: [alice]}
targets: {names: [down, liar, multi]}
target_users: [%s, %s]
actions: [exec]
---
kind: Policy
name: alice-from-elsewhere
type: target-access
subjects: {users: [alice]}
targets: {names: [web2]}
target_users: [%s]
actions: [exec]
source_cidrs: [10.0.0.0/8]
`, w.sshd.Addr, authorizedLine(w.sshd.HostKey), closed, w.sshd.Addr, authorizedLine(otherKey(t)),
		w.unixUser, w.unixUser, second, w.sshd.Addr, authorizedLine(w.sshd.HostKey), w.unixUser, second,
		w.unixUser, second, w.unixUser))

	tests := []struct {
		name      string
		login     string
		command   string
		wantLine  string
		wantEvent string
	}{
		{"malformed", "alice", "true", "malformed login string", audit.LoginMalformed},
		{"too many parts", "alice~a~b~c", "true", "malformed login string", audit.LoginMalformed},
		{"unknown target", "alice~nosuch", "true", "access denied: alice may not reach nosuch", audit.RequestDeny},
		{"target without policy", "alice~web3", "true", "access denied: alice may not reach web3", audit.RequestDeny},
		{"unknown account", "alice~bob~web1", "true", "access denied: alice may not log in to web1 as bob", audit.RequestDeny},
		{"several target users", "alice~multi", "true", "several target users are allowed on multi: " + sortedPair(w.unixUser, second), audit.RequestDeny},
		{"source outside cidrs", "alice~web2", "true", "access denied: alice may not reach web2 from 127.0.0.1", audit.RequestDeny},
		{"action not granted", "alice~web1", "", "access denied: alice is not granted shell on web1", audit.RequestDeny},
		{"target down", "alice~" + w.unixUser + "~down", "true", "target down is unreachable", audit.TargetError},
		{"host key mismatch", "alice~" + w.unixUser + "~liar", "true", "target liar presented an unexpected host key; no credential was offered", audit.HostKeyMismatch},
	}
	// web3 exists but no policy names it: its refusal must read exactly
	// like the one for a target that does not exist.
	w.gw.apply(fmt.Sprintf("kind: Target\nname: web3\naddress: %s\n", w.sshd.Addr))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(w.gw.events(tt.wantEvent))
			var cmd []string
			if tt.command != "" {
				cmd = []string{tt.command}
			}
			_, errOut, code := w.ssh("", tt.login, nil, cmd...)
			if code == 0 {
				t.Fatalf("exit 0, want non-zero; stderr %q", errOut)
			}
			lines := portcullisLines(errOut)
			if len(lines) != 1 || !strings.Contains(lines[0], tt.wantLine) {
				t.Fatalf("client saw %q, want one portcullis line containing %q", errOut, tt.wantLine)
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(w.gw.events(tt.wantEvent)) <= before {
				if time.Now().After(deadline) {
					t.Fatalf("no new %s audit event", tt.wantEvent)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func sortedPair(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + ", " + b
}

func portcullisLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "portcullis:") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

func otherKey(t *testing.T) ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := ssh.NewPublicKey(pub)
	return pk
}

func TestHostKeyMismatchOffersNoCredential(t *testing.T) {
	w := newWorld(t, "exec")
	w.gw.apply(fmt.Sprintf(`
kind: Target
name: web1
address: %s
host_key: %q
`, w.sshd.Addr, authorizedLine(otherKey(t))))
	before := strings.Count(w.sshd.Log(), "for "+w.unixUser)
	_, errOut, code := w.ssh("", "alice~web1", nil, "true")
	if code == 0 || !strings.Contains(errOut, "unexpected host key") {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
	time.Sleep(200 * time.Millisecond)
	if after := strings.Count(w.sshd.Log(), "for "+w.unixUser); after != before {
		t.Fatalf("sshd saw an authentication attempt for %s after a host key mismatch:\n%s", w.unixUser, w.sshd.Log())
	}
}

func TestUnknownUserSeesOrdinaryFailure(t *testing.T) {
	w := newWorld(t, "exec")
	_, errOut, code := w.ssh("", "mallory~web1", nil, "true")
	if code != 255 || !strings.Contains(errOut, "Permission denied") || strings.Contains(errOut, "portcullis") {
		t.Fatalf("code %d stderr %q: want the plain SSH failure", code, errOut)
	}
	w.gw.waitEvent(audit.LoginFailure, func(ev store.AuditEvent) bool { return ev.User == "mallory" })
}

// pubOnlySigner offers a public key it does not hold the private half of.
type pubOnlySigner struct {
	pub  ssh.PublicKey
	real ssh.Signer
}

func (s pubOnlySigner) PublicKey() ssh.PublicKey { return s.pub }
func (s pubOnlySigner) Sign(r io.Reader, data []byte) (*ssh.Signature, error) {
	return s.real.Sign(r, data)
}

func TestOfferingAnothersPublicKeyGetsNothing(t *testing.T) {
	w := newWorld(t, "exec")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	mine, _ := ssh.NewSignerFromKey(priv)
	cfg := &ssh.ClientConfig{
		User:            "alice~web1",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(pubOnlySigner{pub: w.client.Public, real: mine})},
		HostKeyCallback: ssh.FixedHostKey(w.gw.hostKey),
		Timeout:         5 * time.Second,
	}
	c, err := ssh.Dial("tcp", w.gw.addr, cfg)
	if err == nil {
		c.Close()
		t.Fatal("authenticated with alice's public key and someone else's private key")
	}
	if n := len(w.gw.events(audit.LoginSuccess)); n != 0 {
		t.Fatalf("%d login.success events, want 0", n)
	}
}

func TestForwardingRefusals(t *testing.T) {
	w := newWorld(t, "shell, exec")
	// -W (like -L and -D, a direct-tcpip channel) without the tunnel
	// action: the channel is refused with our reason.
	_, errOut, code := w.ssh("", "alice~web1", []string{"-W", w.sshd.Addr})
	if code == 0 || !strings.Contains(errOut, "not granted tunnel") {
		t.Fatalf("-W without tunnel: code %d stderr %q", code, errOut)
	}
	// Agent forwarding: refused with a line, the command still runs. The
	// client asks for it only when it has an agent, so run one.
	sock := filepath.Join(w.clientDir, "agent")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = agent.Process.Kill(); _ = agent.Wait() }()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	args := w.opts(true)
	for i := range args {
		if args[i] == "IdentityAgent=none" {
			args[i] = "IdentityAgent=" + sock
		}
	}
	out, errOut, code := testenv.Run(t, 30*time.Second, "ssh", append(args, "-A", "-l", "alice~web1", "127.0.0.1", "echo ran")...)
	if code != 0 || out != "ran\n" || !strings.Contains(errOut, "agent forwarding is refused") {
		t.Fatalf("-A: code %d stderr %q", code, errOut)
	}
	// -R: refused by the gateway; with ExitOnForwardFailure the client
	// exits non-zero.
	_, errOut, code = w.ssh("", "alice~web1", []string{"-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:9"}, "sleep 5")
	if code == 0 || !strings.Contains(errOut, "remote port forwarding failed") {
		t.Fatalf("-R: code %d stderr %q", code, errOut)
	}
	w.gw.waitEvent(audit.RequestDeny, func(ev store.AuditEvent) bool { return ev.Detail["action"] == "remote-forward" })
}

func TestTunnels(t *testing.T) {
	w := newWorld(t, "tunnel, exec")
	// A TCP echo server on loopback that the target's sshd connects to.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
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
	// -W: stdio forwarding.
	out, errOut, code := w.ssh("ping through -W\n", "alice~web1", []string{"-W", ln.Addr().String()})
	if code != 0 || out != "ping through -W\n" {
		t.Fatalf("-W: code %d out %q err %q", code, out, errOut)
	}
	w.gw.waitEvent(audit.SessionStart, func(ev store.AuditEvent) bool { return ev.Detail["destination"] == ln.Addr().String() })

	// -L: a local port forwarded through the gateway while a command runs.
	port := testenv.FreePort(t)
	args := append(w.opts(true), "-l", "alice~web1", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:%s", port, ln.Addr()), "127.0.0.1", "sleep 10")
	cmd := exec.Command("ssh", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var fwd net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		fwd, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("-L port never opened: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer fwd.Close()
	msg := []byte("through -L\n")
	if _, err := fwd.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	_ = fwd.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(fwd, got); err != nil || string(got) != string(msg) {
		t.Fatalf("-L echo: %q, %v", got, err)
	}
}

func TestPreAuthLimits(t *testing.T) {
	testenv.RequireRoot(t)
	gw := startGateway(t, func(c *sshgate.Config) {
		c.AuthTimeout = 500 * time.Millisecond
		c.FailureBurst = 2
		c.FailuresPerMinute = 1
	})
	// A client that connects and says nothing is closed after AuthTimeout.
	c, err := net.Dial("tcp", gw.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("silent connection still open after 5s; want closed after AuthTimeout")
			}
			break
		}
	}
	// A stalled client does not block others: while one connection sits
	// idle, failed logins are still answered, then rate limited.
	idle, _ := net.Dial("tcp", gw.addr)
	defer idle.Close()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	try := func() error {
		cl, err := ssh.Dial("tcp", gw.addr, &ssh.ClientConfig{User: "nobody~web1", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.FixedHostKey(gw.hostKey), Timeout: 3 * time.Second})
		if err == nil {
			cl.Close()
		}
		return err
	}
	for i := 0; i < 2; i++ {
		if err := try(); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("attempt %d: %v, want an authentication failure", i, err)
		}
	}
	if err := try(); err == nil || strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("attempt after the burst: %v, want the connection dropped before authentication", err)
	}
}
