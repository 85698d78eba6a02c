package sshgate_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/sshgate"
	"github.com/portcullis/portcullis/internal/store"
)

// freezingProxy relays TCP to addr; once frozen it stops reading what the
// gateway sends (a target whose host stopped: its TCP window closes, and
// the gateway's writes to it block). Its receive buffer is small so that
// the window closes after a few kilobytes.
type freezingProxy struct {
	ln       net.Listener
	frozen   chan struct{}
	freeze   sync.Once
	released chan struct{}
	wg       sync.WaitGroup
}

func startFreezingProxy(t *testing.T, addr string) *freezingProxy {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, frozen: make(chan struct{}), released: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			tc, err := net.Dial("tcp", addr)
			if err != nil {
				nc.Close()
				continue
			}
			p.wg.Add(2)
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(nc, tc)
				nc.Close()
			}()
			go func() {
				defer p.wg.Done()
				defer tc.Close()
				defer nc.Close()
				buf := make([]byte, 1024)
				for {
					select {
					case <-p.frozen:
						<-p.released
						return
					default:
					}
					n, err := nc.Read(buf)
					if _, werr := tc.Write(buf[:n]); werr != nil || err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(p.released)
		p.wg.Wait()
	})
	return p
}

// writeBlocked says whether a goroutine of the gateway's session pumps
// waits for a TCP connection to take its write.
func writeBlocked() bool {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "sshgate.(*pump)") && strings.Contains(g, "waitWrite") {
			return true
		}
	}
	return false
}

// TestHostedSessionFrozenTargetHangUpEnds: the hosted session's target
// stops reading (its host froze) while the client sends data, then one
// resize, then hangs up. The resize must not hold the connection's loop
// in a write to the target: that loop is what closes the upstream on
// the hang-up, which ends the session and its blocked writes. Hosted, it
// waited for the target for good: no session end, the connection never
// left the gateway.
func TestHostedSessionFrozenTargetHangUpEnds(t *testing.T) {
	w := newWorld(t, "shell, exec")
	p := startFreezingProxy(t, w.sshd.Addr)
	w.gw.apply(fmt.Sprintf("kind: Target\nname: web1\naddress: %s\nhost_key: %q\nlabels: {env: test}\n",
		p.ln.Addr(), authorizedLine(w.sshd.HostKey)))
	before := goroutinesIn(anyConn...)
	c, s := freezeUnderLoad(t, w, p)
	if _, err := s.ch.SendRequest("window-change", false, ssh.Marshal(struct{ W, H, X, Y uint32 }{90, 20, 0, 0})); err != nil {
		t.Fatal(err)
	}
	// The loop is still free: it answers a global request (the wait is a
	// bound for the test, not a measure).
	answered := make(chan error, 1)
	go func() {
		_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Error("the connection's loop does not answer global requests while the hosted session's target is frozen")
	}
	c.Close()
	w.gw.waitEvent(audit.SessionEnd, nil)
	waitUntil(t, "the connection left the gateway", func() bool { return w.gw.srv.ActiveConns() == 0 })
	waitUntil(t, "the connection's goroutines ended", func() bool { return goroutinesIn(anyConn...) <= before })
}

// freezeUnderLoad opens a cat session, waits until the connection's loop
// hosts it, opens four beside it on w's
// gateway through p, freezes p and fills the target's window with the
// sessions' data until a pump of the gateway's waits for the target.
func freezeUnderLoad(t *testing.T, w *world, p *freezingProxy) (*ssh.Client, *hostedSession) {
	t.Helper()
	c := dialWorld(t, w)
	s := openRaw(t, c)
	s.exec(t, "cat")
	s.echo(t, "up")
	waitUntil(t, "the session hosted", func() bool {
		return goroutinesIn("sshgate.(*conn).runSession(") == 0 && goroutinesIn(sessionLoop) == 0
	})
	// Sessions beside it, whose data fills the TCP buffers with the
	// hosted one's (a target's channel window is 2 MiB, the gateway's
	// send buffer grows to 4 MiB).
	others := []*hostedSession{s}
	for range 4 {
		o := openRaw(t, c)
		o.exec(t, "cat")
		o.echo(t, "beside")
		others = append(others, o)
	}
	p.freeze.Do(func() { close(p.frozen) })
	for _, o := range others {
		go func() { _, _ = o.ch.Write(make([]byte, 8<<20)) }()
	}
	waitUntil(t, "the gateway's write to the target blocked", writeBlocked)
	return c, s
}

// TestFrozenTargetManyResizesHangUpEnds: with the target frozen, the
// client sends more resizes than the channel's request queue holds (2),
// then hangs up. The goroutine forwarding the first waits for the
// target; had it waited for good, the rest would have stopped the client
// connection's read loop, the hang-up would never have been seen and the
// connection and its goroutines would have stayed for good. The write
// is bounded instead: the target is taken for dead, its connection is
// closed and the sessions end saying why.
func TestFrozenTargetManyResizesHangUpEnds(t *testing.T) {
	sshgate.SetUpstreamStall(t, time.Second)
	w := newWorld(t, "shell, exec")
	p := startFreezingProxy(t, w.sshd.Addr)
	w.gw.apply(fmt.Sprintf("kind: Target\nname: web1\naddress: %s\nhost_key: %q\nlabels: {env: test}\n",
		p.ln.Addr(), authorizedLine(w.sshd.HostKey)))
	before := goroutinesIn(anyConn...)
	c, s := freezeUnderLoad(t, w, p)
	resize := func(cols uint32) {
		if _, err := s.ch.SendRequest("window-change", false, ssh.Marshal(struct{ W, H, X, Y uint32 }{cols, 20, 0, 0})); err != nil {
			t.Fatal(err)
		}
	}
	resize(90)
	waitUntil(t, "the resize's forwarding waits for the target", func() bool {
		return goroutinesIn("sshgate.forwardClientRequest(") > 0
	})
	for i := range 5 {
		resize(uint32(91 + i))
	}
	c.Close()
	w.gw.waitEvent(audit.SessionEnd, func(ev store.AuditEvent) bool {
		r, _ := ev.Detail["end_reason"].(string)
		return strings.Contains(r, "stopped reading")
	})
	waitUntil(t, "the connection left the gateway", func() bool { return w.gw.srv.ActiveConns() == 0 })
	waitUntil(t, "the connection's goroutines ended", func() bool { return goroutinesIn(anyConn...) <= before })
}

// TestFrozenTargetIdleTimeoutEnds: a session whose target froze goes
// idle (nothing moves) and its idle_timeout ends it. Ending it sends TERM
// and closes the target's channel, writes that wait for the target: had
// they come before the abort timer, the session would never have ended
// (no end event) and the timer's goroutine would have waited for good.
func TestFrozenTargetIdleTimeoutEnds(t *testing.T) {
	w := newWorld(t, "shell, exec")
	p := startFreezingProxy(t, w.sshd.Addr)
	w.gw.apply(fmt.Sprintf(`
kind: Target
name: web1
address: %s
host_key: %q
labels: {env: test}
---
kind: Policy
name: alice-web1
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [%s]
actions: [shell, exec]
source_cidrs: [127.0.0.0/8]
idle_timeout: 2s
`, p.ln.Addr(), authorizedLine(w.sshd.HostKey), w.unixUser))
	before := goroutinesIn(anyConn...)
	c, _ := freezeUnderLoad(t, w, p)
	w.gw.waitEvent(audit.SessionLimit, nil)
	waitUntil(t, "the idle sessions ended", func() bool {
		return len(w.gw.events(audit.SessionEnd)) == 5
	})
	c.Close()
	waitUntil(t, "the connection left the gateway", func() bool { return w.gw.srv.ActiveConns() == 0 })
	waitUntil(t, "the connection's goroutines ended", func() bool { return goroutinesIn(anyConn...) <= before })
}
