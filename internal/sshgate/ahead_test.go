package sshgate_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// The connection made ahead (ahead.go): dialed once the client has
// authenticated, logged in only for an authorized request, closed
// otherwise, and invisible in the audit trail.

// targetConns counts the connections the target's sshd accepted so far.
func (w *world) targetConns() int { return strings.Count(w.sshd.Log(), "Connection from ") }

// auditTypes lists the types of every audit event so far, in order.
func (g *gateway) auditTypes() []string {
	var out []string
	evs := g.events("")
	slices.SortFunc(evs, func(a, b store.AuditEvent) int { return int(a.ID - b.ID) })
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

// waitTargetIdle waits until every connection the target's sshd accepted
// has ended: after each "Connection from 127.0.0.1 port P" line, sshd
// logs another line about port P when it ends (closed, disconnected, or a
// fatal error such as a broken pipe).
func (w *world) waitTargetIdle() {
	w.gw.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		log := w.sshd.Log()
		open := 0
		for _, line := range strings.Split(log, "\n") {
			rest, ok := strings.CutPrefix(line, "Connection from 127.0.0.1 port ")
			if !ok {
				continue
			}
			port, _, _ := strings.Cut(rest, " ")
			if strings.Count(log, "port "+port+" ")+strings.Count(log, "port "+port+":")+
				strings.Count(log, "port "+port+"\n") < 2 {
				open++
			}
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.gw.t.Fatalf("%d connections to the target are still open:\n%s", open, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAheadConnectionCarriesTheSession(t *testing.T) {
	w := newWorld(t, "exec")
	before := w.targetConns()
	out, errOut, code := w.ssh("", "alice~web1", nil, "echo ran")
	if code != 0 || out != "ran\n" {
		t.Fatalf("code %d stdout %q stderr %q", code, out, errOut)
	}
	made, used := w.gw.srv.AheadStats()
	if made != 1 || used != 1 {
		t.Fatalf("made %d, used %d connections ahead; want 1 and 1: the target was not dialed ahead of alice's request", made, used)
	}
	// One login, one connection at the target: the one made ahead, not
	// a second dial.
	if n := w.targetConns() - before; n != 1 {
		t.Errorf("the target saw %d connections for one session, want 1", n)
	}
	// The audit trail is what it was without it: no host key event.
	w.gw.waitEvent(audit.SessionEnd, nil)
	if got, want := w.gw.auditTypes(), []string{audit.LoginSuccess, audit.SessionStart, audit.SessionEnd}; !slices.Equal(got, want) {
		t.Errorf("audit trail %v, want %v", got, want)
	}
}

// TestAheadClosedWithoutARequest: alice logs in and leaves without a
// request. The connection made ahead must end at the target without any
// credential, and the audit trail says nothing about the target.
func TestAheadClosedWithoutARequest(t *testing.T) {
	w := newWorld(t, "exec")
	c, err := ssh.Dial("tcp", w.gw.addr, &ssh.ClientConfig{User: "alice~web1",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(w.client.Signer)},
		HostKeyCallback: ssh.FixedHostKey(w.gw.hostKey), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if made, used := w.gw.srv.AheadStats(); made != 1 || used != 0 {
		t.Fatalf("made %d, used %d connections ahead; want 1 and 0", made, used)
	}
	// The gateway closed it, at whatever step it had reached (its key
	// exchange, or waiting for a credential).
	w.waitTargetIdle()
	if strings.Contains(w.sshd.Log(), "publickey for "+w.unixUser) {
		t.Errorf("the target saw a key offered for %s although alice made no request:\n%s", w.unixUser, w.sshd.Log())
	}
	w.gw.waitEvent(audit.LoginSuccess, nil)
	for _, typ := range w.gw.auditTypes() {
		if typ != audit.LoginSuccess {
			t.Errorf("audit trail has a %s event", typ)
		}
	}
}

// TestNoAheadBeforeAuthentication: a client that offers alice's public key
// but cannot sign with it (public keys are no secret) makes the gateway
// connect nowhere.
func TestNoAheadBeforeAuthentication(t *testing.T) {
	w := newWorld(t, "exec")
	before := w.targetConns()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	mine, _ := ssh.NewSignerFromKey(priv)
	c, err := ssh.Dial("tcp", w.gw.addr, &ssh.ClientConfig{User: "alice~web1",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(pubOnlySigner{pub: w.client.Public, real: mine})},
		HostKeyCallback: ssh.FixedHostKey(w.gw.hostKey), Timeout: 5 * time.Second})
	if err == nil {
		c.Close()
		t.Fatal("authenticated without the private key")
	}
	if made, _ := w.gw.srv.AheadStats(); made != 0 {
		t.Errorf("%d connections made ahead for a client that never authenticated", made)
	}
	if n := w.targetConns() - before; n != 0 {
		t.Errorf("the target saw %d connections", n)
	}
}

// TestNoAheadWithoutARegisteredKeyForAReachableTarget: without alice's key
// and a target she may reach as one known target user, no login makes the
// gateway dial before a request.
func TestNoAheadWithoutARegisteredKeyForAReachableTarget(t *testing.T) {
	w := newWorld(t, "exec")
	// web2 is the same sshd, but no policy lets anyone reach it; web3
	// is reachable as two target users, so which one is not known
	// before a request.
	w.gw.apply(fmt.Sprintf(`
kind: Target
name: web2
address: %s
host_key: %q
---
kind: Target
name: web3
address: %s
host_key: %q
---
kind: Account
name: %s
target: web3
---
kind: Account
name: nobody
target: web3
---
kind: Policy
name: alice-web3
type: target-access
subjects: {users: [alice]}
targets: {names: [web3]}
target_users: [%s, nobody]
actions: [exec]
`, w.sshd.Addr, authorizedLine(w.sshd.HostKey), w.sshd.Addr, authorizedLine(w.sshd.HostKey), w.unixUser, w.unixUser))
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewSignerFromKey(otherPriv)
	for _, tc := range []struct {
		name, login string
		signer      ssh.Signer // nil: alice's key
	}{
		{"unknown user", "mallory~web1", nil},
		{"key not registered to the user", "alice~web1", other},
		{"target nobody grants", "alice~web2", nil},
		{"unknown target", "alice~nosuch", nil},
		{"account the policy does not grant", "alice~root~web1", nil},
		{"several target users", "alice~web3", nil},
		{"malformed login string", "alice~~", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.targetConns()
			made0, _ := w.gw.srv.AheadStats()
			signer := tc.signer
			if signer == nil {
				signer = w.client.Signer
			}
			c, err := ssh.Dial("tcp", w.gw.addr, &ssh.ClientConfig{User: tc.login,
				Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
				HostKeyCallback: ssh.FixedHostKey(w.gw.hostKey), Timeout: 5 * time.Second})
			if err == nil {
				// Logged in (web2, web3, root): the refusal comes with the
				// first request, which is not what this test is about.
				c.Close()
			}
			if made, _ := w.gw.srv.AheadStats(); made != made0 {
				t.Errorf("%s made a connection ahead", tc.login)
			}
			if n := w.targetConns() - before; n != 0 {
				t.Errorf("the target saw %d connections for %s", n, tc.login)
			}
		})
	}
}

// TestAheadHostKeyMismatchRefusesBeforeAnyCredential: the connection made
// ahead meets a host key that is not the pinned one; the session is
// refused as before, the target sees no authentication, and the mismatch
// is audited once, by the dial that follows.
func TestAheadHostKeyMismatchRefusesBeforeAnyCredential(t *testing.T) {
	w := newWorld(t, "exec")
	w.gw.apply(fmt.Sprintf(`
kind: Target
name: web1
address: %s
host_key: %q
`, w.sshd.Addr, authorizedLine(otherKey(t))))
	_, errOut, code := w.ssh("", "alice~web1", nil, "true")
	if code == 0 || !strings.Contains(errOut, "unexpected host key") {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
	if made, used := w.gw.srv.AheadStats(); made != 1 || used != 0 {
		t.Fatalf("made %d, used %d connections ahead; want 1 and 0", made, used)
	}
	if strings.Contains(w.sshd.Log(), "for "+w.unixUser) {
		t.Fatalf("sshd saw an authentication attempt for %s after a host key mismatch:\n%s", w.unixUser, w.sshd.Log())
	}
	w.gw.waitEvent(audit.TargetError, nil)
	if n := len(w.gw.events(audit.HostKeyMismatch)); n != 1 {
		t.Errorf("%d hostkey.mismatch events, want 1", n)
	}
}

// TestAheadLearnsNoHostKey: for a target whose host key is not pinned, a
// connection made ahead neither learns it nor audits it; the dial for the
// first authorized request does, once, and later logins use connections
// made ahead against the learned key.
func TestAheadLearnsNoHostKey(t *testing.T) {
	w := newWorld(t, "exec")
	w.gw.apply(fmt.Sprintf(`
kind: Target
name: web1
address: %s
`, w.sshd.Addr))
	for i := range 2 {
		out, errOut, code := w.ssh("", "alice~web1", nil, "echo ran")
		if code != 0 || out != "ran\n" {
			t.Fatalf("login %d: code %d stdout %q stderr %q", i, code, out, errOut)
		}
	}
	made, used := w.gw.srv.AheadStats()
	if made != 2 || used != 1 {
		t.Errorf("made %d, used %d connections ahead; want 2 made and 1 used (the second login, once the key was learned)", made, used)
	}
	if n := len(w.gw.events(audit.HostKeyLearned)); n != 1 {
		t.Errorf("%d hostkey.learned events, want 1", n)
	}
}
