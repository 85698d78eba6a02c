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
