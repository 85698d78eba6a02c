package sshgate_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// The connection's loop serves the request loop of one running session
// (conn.serve, hostBridge): these tests try to break that merge. The
// goroutines they count are the gateway's own, by their frames.

// goroutinesIn counts the goroutines whose stack has any of the frames
// (as a goroutine dump prints them, "sshgate.(*conn).serve(").
func goroutinesIn(frames ...string) int {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	n := 0
	for _, g := range strings.Split(buf.String(), "\n\n") {
		for _, f := range frames {
			if strings.Contains(g, f) {
				n++
				break
			}
		}
	}
	return n
}

// Frames of the goroutines a connection and its sessions keep.
var (
	connLoop    = "sshgate.(*conn).serve("
	sessionLoop = "sshgate.(*bridge).run("
	anyConn     = []string{"sshgate.(*Server).handle(", "sshgate.(*conn).", "sshgate.(*bridge).", "sshgate.(*pump).", "sshgate.(*hostedBridge)", "sshgate.(*conn).unhost"}
)

// waitUntil polls cond; the bound is for the test, not a measure.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%s: not within 20 s; goroutines:\n%s", what, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dialWorld logs in to w's gateway with the Go client.
func dialWorld(t *testing.T, w *world) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", w.gw.addr, &ssh.ClientConfig{User: "alice~web1",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(w.client.Signer)}, HostKeyCallback: ssh.FixedHostKey(w.gw.hostKey)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// hostedSession is a raw session channel with its reads collected.
type hostedSession struct {
	ch     ssh.Channel
	status chan uint32 // the exit status, once
}

// openRaw opens a session channel and answers nothing it is sent but
// takes exit-status.
func openRaw(t *testing.T, c *ssh.Client) *hostedSession {
	t.Helper()
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &hostedSession{ch: ch, status: make(chan uint32, 1)}
	go func() {
		for r := range reqs {
			if r.Type == "exit-status" {
				var p struct{ Status uint32 }
				if ssh.Unmarshal(r.Payload, &p) == nil {
					s.status <- p.Status
				}
			}
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}()
	return s
}

func (s *hostedSession) exec(t *testing.T, cmd string) {
	t.Helper()
	ok, err := s.ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{cmd}))
	if err != nil || !ok {
		t.Fatalf("exec %q: %v, %v", cmd, ok, err)
	}
}

// readUntil reads the session's stdout until it holds want.
func (s *hostedSession) readUntil(t *testing.T, want string) {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(want)) {
		n, err := s.ch.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading for %q: %v (have %q)", want, err, got)
		}
	}
}

// echo checks that the session (running cat) echoes a line.
func (s *hostedSession) echo(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(s.ch, line+"\n"); err != nil {
		t.Fatal(err)
	}
	s.readUntil(t, line)
}

// TestHostedSessionIdleGoroutines: an idle connection with one running
// session parks one gateway goroutine of its own (the connection's loop,
// which serves the session's requests too), and none once it is closed.
func TestHostedSessionIdleGoroutines(t *testing.T) {
	w := newWorld(t, "shell, exec")
	before := goroutinesIn(anyConn...)
	c := dialWorld(t, w)
	s := openRaw(t, c)
	s.exec(t, "cat")
	s.echo(t, "one")
	waitUntil(t, "the session's loop handed to the connection's", func() bool {
		return goroutinesIn(sessionLoop) == 0 && goroutinesIn("sshgate.(*conn).runSession(") == 0
	})
	if n := goroutinesIn(connLoop); n != 1 {
		t.Fatalf("%d connection loops, want 1", n)
	}
	// Still served: a resize, a line, a keepalive.
	if _, err := s.ch.SendRequest("window-change", false, ssh.Marshal(struct{ W, H, X, Y uint32 }{100, 30, 0, 0})); err != nil {
		t.Fatal(err)
	}
	s.echo(t, "two")
	if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	w.gw.waitEvent(audit.SessionEnd, nil)
	waitUntil(t, "the connection's goroutines ended", func() bool { return goroutinesIn(anyConn...) <= before })
}

// TestHostedSessionBlockedOthersServed: while the hosted session (the
// first) is blocked both ways (its client does not read a flood of
// output, its target does not read what the client sends), the
// connection still answers global requests, opens and runs a second
// session, refuses what it refuses, and ends cleanly.
func TestHostedSessionBlockedOthersServed(t *testing.T) {
	w := newWorld(t, "shell, exec")
	before := goroutinesIn(anyConn...)
	c := dialWorld(t, w)
	first := openRaw(t, c)
	// Output the client never reads (its window fills), from a command
	// that never reads its input (the target's window fills).
	first.exec(t, "head -c 8000000 /dev/zero; sleep 600")
	waitUntil(t, "the first session hosted", func() bool {
		return goroutinesIn("sshgate.(*conn).runSession(") == 0 && goroutinesIn(connLoop) == 1
	})
	flooded := make(chan error, 1)
	go func() {
		// Blocks once the target's window is full; ends with the channel.
		_, err := first.ch.Write(make([]byte, 8<<20))
		flooded <- err
	}()
	for range 20 {
		if _, err := first.ch.SendRequest("window-change", false, ssh.Marshal(struct{ W, H, X, Y uint32 }{90, 20, 0, 0})); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil || ok {
		t.Fatalf("keepalive: %v, %v; want a failure reply", ok, err)
	}
	if ok, _, err := c.SendRequest("tcpip-forward", true, ssh.Marshal(struct {
		Addr string
		Port uint32
	}{"127.0.0.1", 0})); err != nil || ok {
		t.Fatalf("tcpip-forward: %v, %v; want refused", ok, err)
	}
	second := openRaw(t, c)
	second.exec(t, "cat")
	second.echo(t, "second")
	if _, _, err := c.OpenChannel("x11", nil); err == nil {
		t.Fatal("an x11 channel was opened")
	}
	second.ch.CloseWrite()
	select {
	case st := <-second.status:
		if st != 0 {
			t.Fatalf("second session exit %d", st)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit status for the second session")
	}
	// no-more-sessions is taken and kept while the first still runs.
	if _, _, err := c.SendRequest("no-more-sessions@openssh.com", true, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.OpenChannel("session", nil); err == nil {
		t.Fatal("a session was opened after no-more-sessions")
	}
	c.Close()
	<-flooded
	w.gw.waitEvent(audit.SessionEnd, func(ev store.AuditEvent) bool {
		return strings.Contains(ev.SessionID, "-1")
	})
	waitUntil(t, "the connection's goroutines ended", func() bool { return goroutinesIn(anyConn...) <= before })
}

// TestHostedSessionEndsOthersStay: the hosted session ending leaves the
// connection serving the session that runs beside it and new ones, the
// next of which the connection's loop hosts in turn.
func TestHostedSessionEndsOthersStay(t *testing.T) {
	w := newWorld(t, "shell, exec")
	before := goroutinesIn(anyConn...)
	c := dialWorld(t, w)
	first := openRaw(t, c)
	first.exec(t, "cat")
	first.echo(t, "first")
	waitUntil(t, "the first session hosted", func() bool { return goroutinesIn("sshgate.(*conn).runSession(") == 0 })
	second := openRaw(t, c)
	second.exec(t, "cat")
	second.echo(t, "second")
	if n := goroutinesIn(sessionLoop); n != 1 {
		t.Fatalf("%d sessions with a loop of their own, want 1 (the second)", n)
	}
	first.ch.CloseWrite()
	if st := <-first.status; st != 0 {
		t.Fatalf("first session exit %d", st)
	}
	first.ch.Close()
	w.gw.waitEvent(audit.SessionEnd, nil)
	second.echo(t, "still")
	if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Fatal(err)
	}
	third := openRaw(t, c)
	third.exec(t, "cat")
	third.echo(t, "third")
	waitUntil(t, "the third session hosted", func() bool {
		return goroutinesIn("sshgate.(*conn).runSession(") == 1 && goroutinesIn(sessionLoop) == 1
	})
	third.echo(t, "third again")
	second.echo(t, "second again")
	third.ch.CloseWrite()
	if st := <-third.status; st != 0 {
		t.Fatalf("third session exit %d", st)
	}
	c.Close()
	waitUntil(t, "three session ends", func() bool { return len(w.gw.events(audit.SessionEnd)) == 3 })
	waitUntil(t, "the connection's goroutines ended", func() bool { return goroutinesIn(anyConn...) <= before })
}

// TestHostedSessionClientGoneMidSetup: a client that hangs up while its
// session is being set up (before, as and after it starts) leaves no
// goroutine behind, whichever of the session and the connection's loop
// gets there first; and a session in setup does not hold up another's.
func TestHostedSessionClientGoneMidSetup(t *testing.T) {
	w := newWorld(t, "shell, exec")
	before := goroutinesIn(anyConn...)
	for i := range 6 {
		c := dialWorld(t, w)
		s := openRaw(t, c)
		switch i % 3 {
		case 0: // setup requests only
			_, _ = s.ch.SendRequest("pty-req", false, ssh.Marshal(struct {
				Term         string
				W, H, PW, PH uint32
				Modes        string
			}{"xterm", 80, 24, 0, 0, ""}))
		case 1: // the start, without waiting for its answer
			_, _ = s.ch.SendRequest("exec", false, ssh.Marshal(struct{ Command string }{"sleep 600"}))
		case 2: // a second session runs while the first is in setup
			_, _ = s.ch.SendRequest("pty-req", true, ssh.Marshal(struct {
				Term         string
				W, H, PW, PH uint32
				Modes        string
			}{"xterm", 80, 24, 0, 0, ""}))
			other := openRaw(t, c)
			other.exec(t, "cat")
			other.echo(t, "beside")
			s.exec(t, "cat")
			s.echo(t, "late")
		}
		c.Close()
	}
	waitUntil(t, "the connections' goroutines ended", func() bool { return goroutinesIn(anyConn...) <= before })
	if n := w.gw.srv.ActiveConns(); n != 0 {
		t.Fatalf("%d connections left", n)
	}
}

// TestHostedSessionSlowDial: a session whose target does not answer (its
// dial waits) does not hold up the connection's loop: global requests
// are answered and channels opened meanwhile, and the hang-up ends all.
func TestHostedSessionSlowDial(t *testing.T) {
	w := newWorld(t, "shell, exec")
	// A target that accepts and never speaks.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, nc) }()
		}
	}()
	w.gw.apply(fmt.Sprintf("kind: Target\nname: web1\naddress: %s\nhost_key: %q\nlabels: {env: test}\n",
		ln.Addr(), authorizedLine(w.sshd.HostKey)))
	before := goroutinesIn(anyConn...)
	c := dialWorld(t, w)
	first := openRaw(t, c)
	started := make(chan struct{})
	go func() {
		defer close(started)
		_, _ = first.ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{"id"}))
	}()
	waitUntil(t, "the dial under way", func() bool { return goroutinesIn("sshgate.(*conn).upstreamFor(") == 1 })
	if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Fatal(err)
	}
	second := openRaw(t, c)
	_, _ = second.ch.SendRequest("env", true, ssh.Marshal(struct{ Name, Value string }{"LANG", "C"}))
	c.Close()
	<-started
	waitUntil(t, "the connection's goroutines ended", func() bool { return goroutinesIn(anyConn...) <= before })
}
