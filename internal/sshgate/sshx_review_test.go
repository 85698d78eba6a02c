package sshgate_test

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// These tests attack SSHX.md item 14 (one reading goroutine per
// connection) where the other TestSSHXOneReader tests do not: re-keying
// at every packet, connections closed in the middle of exchanges, failed
// handshakes, a peer's close while our writer holds the channel, and
// what is left running afterwards.

// sshGoroutines counts the goroutines with a frame in the ssh package
// that are not the test's own (which only call into it).
func sshGoroutines() (int, string) {
	buf := make([]byte, 16<<20)
	all := string(buf[:runtime.Stack(buf, true)])
	n := 0
	var stacks []string
	for _, g := range strings.Split(all, "\n\n") {
		if strings.Contains(g, "golang.org/x/crypto/ssh.") && !strings.Contains(g, "sshgate_test.") {
			n++
			stacks = append(stacks, g)
		}
	}
	return n, strings.Join(stacks, "\n\n")
}

// sshxNoLeak fails unless the ssh package's goroutines go back to before.
func sshxNoLeak(t *testing.T, before int) {
	t.Helper()
	var stacks string
	n := 0
	defer func() {
		if t.Failed() {
			t.Logf("left running:\n%s", stacks)
		}
	}()
	sshxWaitFor(t, "the ssh package's goroutines to end", func() bool {
		n, stacks = sshGoroutines()
		return n <= before
	})
}

// TestSSHXReviewTinyRekeyCloseMidway: both ends re-key every 256 bytes
// (the smallest RekeyThreshold) under bulk both ways with requests and
// channel churn, then one end closes in the middle of it. Every writer
// and reader returns and nothing of the ssh package keeps running.
func TestSSHXReviewTinyRekeyCloseMidway(t *testing.T) {
	before, _ := sshGoroutines()
	for round := range 6 {
		p := newOnePair(t, 1, 1, nil)
		go echoChannels(p.schans)
		go replyAll(p.sreqs)
		go replyAll(p.creqs)
		go echoChannels(p.cchans)
		var wg sync.WaitGroup
		data := randomBytes(t, 192<<10)
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ch, reqs, err := p.client.OpenChannel("echo", nil)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				_ = echoBoth(ch, data)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch, reqs, err := p.server.OpenChannel("echo", nil)
			if err != nil {
				return
			}
			go ssh.DiscardRequests(reqs)
			_ = echoBoth(ch, data)
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if _, _, err := p.client.SendRequest("keepalive@openssh.com", true, nil); err != nil {
					return
				}
				kind := []string{"echo", "closer"}[i%2]
				ch, reqs, err := p.client.OpenChannel(kind, nil)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				_, _ = ch.SendRequest("env", true, make([]byte, 100))
				_ = ch.Close()
			}
		}()
		// Let some exchanges run, then close one end while they go on.
		ch, reqs, err := p.client.OpenChannel("echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		go ssh.DiscardRequests(reqs)
		if err := echoBoth(ch, randomBytes(t, 16<<10)); err != nil {
			t.Fatal(err)
		}
		if round%2 == 0 {
			p.client.Close()
		} else {
			p.server.Close()
		}
		done := make(chan error, 1)
		go func() { wg.Wait(); done <- nil }()
		if err := waitErr(t, done, fmt.Sprintf("round %d: the writers and readers after a close", round)); err != nil {
			t.Fatal(err)
		}
		p.client.Close()
		p.server.Close()
	}
	sshxNoLeak(t, before)
}

// TestSSHXReviewPeerClosesUnderWriter: the server closes a channel the
// client writes bulk on, while both ends re-key every 256 bytes, so the
// client's loop often finds the channel's write lock held by a writer
// waiting for an exchange (peerClosed's goroutine). The writer returns,
// the close is answered (the server's Wait sees it) and nothing is left.
func TestSSHXReviewPeerClosesUnderWriter(t *testing.T) {
	before, _ := sshGoroutines()
	p := newOnePair(t, 1, 1, nil)
	go replyAll(p.creqs)
	go replyAll(p.sreqs)
	go func() {
		for nch := range p.schans {
			ch, reqs, err := nch.Accept()
			if err != nil {
				continue
			}
			go ssh.DiscardRequests(reqs)
			go func() {
				// Read some, then close while the client still writes.
				_, _ = io.CopyN(io.Discard, ch, 40<<10)
				_ = ch.Close()
				_, _ = io.Copy(io.Discard, ch)
			}()
		}
	}()
	const channels = 20
	errs := make(chan error, channels)
	for range channels {
		go func() {
			ch, reqs, err := p.client.OpenChannel("sink", nil)
			if err != nil {
				errs <- err
				return
			}
			go ssh.DiscardRequests(reqs)
			buf := make([]byte, 8<<10)
			for {
				if _, err := ch.Write(buf); err != nil {
					break
				}
			}
			// The peer's close reaches the reader too.
			_, _ = io.Copy(io.Discard, ch)
			errs <- nil
		}()
	}
	for range channels {
		if err := waitErr(t, errs, "a writer on a channel the peer closed"); err != nil {
			t.Fatal(err)
		}
	}
	// The connection still works.
	if ok, _, err := p.client.SendRequest("after", true, nil); err != nil || !ok {
		t.Fatalf("request after: %v %v", ok, err)
	}
	p.client.Close()
	p.server.Close()
	sshxNoLeak(t, before)
}

// TestSSHXReviewFailedHandshakes: NewClientConn and NewServerConn that
// fail half way (host key refused during the first exchange, every
// password refused, the peer gone during authentication) leave no
// kexLoop or other goroutine behind.
func TestSSHXReviewFailedHandshakes(t *testing.T) {
	before, _ := sshGoroutines()
	hostKey, ln := hostKeyListener(t)
	defer ln.Close()
	srvCfg := &ssh.ServerConfig{
		Config: ssh.Config{RekeyThreshold: 1},
		PasswordCallback: func(ssh.ConnMetadata, []byte) (*ssh.Permissions, error) {
			return nil, fmt.Errorf("no")
		},
	}
	srvCfg.AddHostKey(hostKey)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				if sc, _, _, err := ssh.NewServerConn(c, srvCfg); err == nil {
					sc.Close()
				}
			}()
		}
	}()
	for i := range 30 {
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cfg := &ssh.ClientConfig{User: "u", Config: ssh.Config{RekeyThreshold: 1}}
		switch i % 3 {
		case 0:
			cfg.HostKeyCallback = func(string, net.Addr, ssh.PublicKey) error { return fmt.Errorf("refused") }
		case 1:
			cfg.HostKeyCallback = ssh.FixedHostKey(hostKey.PublicKey())
			cfg.Auth = []ssh.AuthMethod{ssh.Password("x"), ssh.Password("y")}
		case 2:
			cfg.HostKeyCallback = ssh.FixedHostKey(hostKey.PublicKey())
			cfg.Auth = []ssh.AuthMethod{ssh.PasswordCallback(func() (string, error) {
				raw.Close() // the connection goes away during authentication
				return "x", nil
			})}
		}
		done := make(chan error, 1)
		go func() {
			_, _, _, err := ssh.NewClientConn(raw, ln.Addr().String(), cfg)
			done <- err
		}()
		if err := waitErr(t, done, fmt.Sprintf("failing handshake %d", i)); err == nil {
			t.Fatalf("handshake %d succeeded", i)
		}
		raw.Close()
	}
	ln.Close()
	sshxNoLeak(t, before)
}

// TestSSHXReviewFeedBoundCountsDelivering: the messages a drainer has
// taken off its queue but not yet handed to its consumer count against
// maxFeedItems. Each of 10 channels whose consumer takes nothing gets 3
// requests: 2 fill its Go channel, the third waits in its drainer. They
// are 10 messages the loop holds for consumers, and with a flood of
// global requests nobody takes the loop stops at 64 held in all, not 64
// plus one per queue (a peer with many channels would get one more
// message and goroutine per queue past the bound).
func TestSSHXReviewFeedBoundCountsDelivering(t *testing.T) {
	before, _ := sshGoroutines()
	p := newOnePair(t, 0, 0, nil)
	hook, ok := p.server.(*ssh.ServerConn).Conn.(sshxQueued)
	if !ok {
		t.Fatal("the server connection has no SSHXQueued hook: is the patch applied?")
	}
	go replyAll(p.creqs)
	go echoChannels(p.cchans)
	const channels = 10
	held := make(chan (<-chan *ssh.Request), channels)
	go func() {
		for nch := range p.schans {
			_, reqs, err := nch.Accept()
			if err == nil {
				held <- reqs // taken later
			}
		}
	}()
	drainers := func() int {
		buf := make([]byte, 8<<20)
		return strings.Count(string(buf[:runtime.Stack(buf, true)]), "ssh.drainFeed[")
	}
	drainersBefore := drainers()
	chans := make([]ssh.Channel, channels)
	for i := range chans {
		ch, reqs, err := p.client.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		go ssh.DiscardRequests(reqs)
		chans[i] = ch
		for j := range 3 {
			if _, err := ch.SendRequest(fmt.Sprint("c", i, "-", j), false, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	sshxWaitFor(t, "a drainer per channel holding its third request", func() bool {
		return drainers()-drainersBefore == channels
	})
	if _, _, feeds, _ := hook.SSHXQueued(); feeds != channels {
		t.Errorf("the loop counts %d messages held for consumers, want %d (one in each drainer)", feeds, channels)
	}
	const flood = 100
	go func() {
		for i := range flood {
			if _, _, err := p.client.SendRequest(fmt.Sprint("g", i), false, nil); err != nil {
				return
			}
		}
	}()
	sshxWaitFor(t, "the loop to wait for a consumer", func() bool {
		buf := make([]byte, 8<<20)
		s := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(s, "\n\n") {
			if strings.Contains(g, "ssh.feed[") && strings.Contains(g, "ssh.(*mux).loop(") {
				return true
			}
		}
		return false
	})
	// Held now: the Go channels' buffers (2 per channel and 2 global
	// requests) and what the loop counts, which must be all the rest.
	_, _, feeds, feedsMost := hook.SSHXQueued()
	if feeds != sshxMaxFeeds || feedsMost > sshxMaxFeeds {
		t.Errorf("the loop waits with %d messages counted (most %d), bound %d", feeds, feedsMost, sshxMaxFeeds)
	}
	// Every message still comes, in order, once the consumers take them.
	for i := range channels {
		reqs := <-held
		for j := range 3 {
			r := <-reqs
			if want := fmt.Sprint("c", i, "-", j); r.Type != want {
				t.Fatalf("channel request %q, want %q", r.Type, want)
			}
		}
		go ssh.DiscardRequests(reqs)
	}
	for i := range flood {
		r := <-p.sreqs
		if want := fmt.Sprint("g", i); r.Type != want {
			t.Fatalf("global request %q, want %q", r.Type, want)
		}
	}
	go replyAll(p.sreqs)
	if ok, _, err := p.client.SendRequest("after", true, nil); err != nil || !ok {
		t.Fatalf("request after: %v %v", ok, err)
	}
	for _, ch := range chans {
		_ = ch.Close()
	}
	// Nothing left for the tests after this one, which count goroutines.
	p.client.Close()
	p.server.Close()
	sshxNoLeak(t, before)
}
