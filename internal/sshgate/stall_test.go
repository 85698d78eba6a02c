package sshgate_test

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/testenv"
)

// TestRefusalNoticeToFullWindowEnds: a client that never reads its
// session channel, whose window the gateway's refusal notices fill, and
// that then sends more requests, must not keep its connection on the
// gateway after it hangs up. The request loop wrote each notice itself:
// blocked on the window, it stopped taking requests, the connection's
// read loop blocked on the channel's request queue (2 deep, sshx item 8;
// 16 released) and with it the window adjustments and the hang-up, for
// good: the connection and its goroutines never ended.
func TestRefusalNoticeToFullWindowEnds(t *testing.T) {
	gw := startGateway(t)
	client := testenv.NewClientKey(t, testenv.ShortTempDir(t))
	gw.apply(fmt.Sprintf(`
kind: User
name: alice
email: alice@example.com
ssh_keys: [%q]
---
kind: Target
name: web1
address: 127.0.0.1:%d
---
kind: Account
name: app
target: web1
---
kind: Policy
name: alice-web1
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [app]
actions: [shell]
`, client.AuthorizedKey, testenv.FreePort(t)))
	c, err := ssh.Dial("tcp", gw.addr, &ssh.ClientConfig{User: "alice~web1",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(client.Signer)}, HostKeyCallback: ssh.FixedHostKey(gw.hostKey)})
	if err != nil {
		t.Fatal(err)
	}
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	// ch is never read: its 2 MiB window fills with ~60-byte notices.
	for range 50000 {
		if _, err := ch.SendRequest("x11-req", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A refused exec (the policy grants shell) is answered, and its
	// channel's later requests are taken while its line waits for window.
	// Then a global request is answered only once the gateway's read loop
	// has taken everything sent before it: it does not come if the loop
	// is stuck. The wait is a bound for the test, not a measure.
	answered := make(chan error, 1)
	go func() {
		if ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{"id"})); err != nil || !ok {
			answered <- fmt.Errorf("exec answered %v, %v; want the refusal acknowledged", ok, err)
			return
		}
		// The refused session's channel may be closed by the gateway
		// before all of these are sent (its line found window: the
		// notices before it were dropped past the queue's bound): EOF
		// then, and the connection is what is checked next.
		for range 10 {
			if _, err := ch.SendRequest("window-change", false, ssh.Marshal(struct{ W, H, X, Y uint32 }{80, 24, 0, 0})); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				answered <- err
				return
			}
		}
		_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Error("the gateway stopped reading the connection of a client that does not read its session channel")
	}
	if n := gw.srv.ActiveConns(); n != 1 {
		t.Fatalf("%d connections on the gateway, want 1", n)
	}
	c.Close()
	// A bound for the test, not a measure: the gateway sees the hang-up
	// at once when its read loop is free.
	deadline := time.Now().Add(20 * time.Second)
	for gw.srv.ActiveConns() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the connection is still open on the gateway 20 s after the client hung up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
