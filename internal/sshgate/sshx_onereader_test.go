package sshgate_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// These tests hold SSHX.md item 14: a connection made by NewClientConn or
// NewServerConn is read by one goroutine (the mux's loop), which must never
// block on what only the end of a key exchange releases.

// sshxQueued is the test hook of the patched ssh package (SSHX.md, 14):
// packets waiting for a key exchange to end and messages waiting in the
// loop's overflow queues for their consumers, now and at most.
type sshxQueued interface {
	SSHXQueued() (pending, pendingMost, feeds, feedsMost int)
}

// The bounds SSHX.md 14 gives: maxPendingPackets + maxLoopPendingPackets
// and maxFeedItems.
const (
	sshxMaxPending = 64 + 64
	sshxMaxFeeds   = 64
)

// onePair is an x/crypto client and server connection over loopback TCP
// with the given rekey thresholds (0: the default); wrap, if not nil,
// wraps the client's side of the TCP connection. Nothing consumes the
// connections' channels and requests: the test does.
type onePair struct {
	client  ssh.Conn
	cchans  <-chan ssh.NewChannel
	creqs   <-chan *ssh.Request
	server  ssh.Conn
	schans  <-chan ssh.NewChannel
	sreqs   <-chan *ssh.Request
	srvConn net.Conn
}

func newOnePair(t *testing.T, srvRekey, cliRekey uint64, wrap func(net.Conn) net.Conn) *onePair {
	t.Helper()
	hostKey, ln := hostKeyListener(t)
	defer ln.Close()
	srvCfg := &ssh.ServerConfig{NoClientAuth: true, Config: ssh.Config{RekeyThreshold: srvRekey}}
	srvCfg.AddHostKey(hostKey)
	p := &onePair{}
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		p.srvConn = c
		p.server, p.schans, p.sreqs, err = ssh.NewServerConn(c, srvCfg)
		done <- err
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var c net.Conn = raw
	if wrap != nil {
		c = wrap(raw)
	}
	p.client, p.cchans, p.creqs, err = ssh.NewClientConn(c, ln.Addr().String(), &ssh.ClientConfig{
		User:            "u",
		HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()),
		Config:          ssh.Config{RekeyThreshold: cliRekey, Ciphers: []string{"aes128-gcm@openssh.com"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Close and Wait: the mux loop is over when Wait returns, so a test
	// after this one that counts the package's goroutines (as
	// TestSSHXOneReaderPerConnection does) does not see it end midway.
	t.Cleanup(func() { p.client.Close(); _ = p.client.Wait() })
	if err := waitErr(t, done, "the server handshake"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.server.Close(); _ = p.server.Wait() })
	return p
}

// sshxWait is how long any one step may take before the test fails: far
// beyond what it needs, so that only a hang reaches it.
const sshxWait = 60 * time.Second

func waitErr(t *testing.T, c <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(sshxWait):
		t.Fatalf("%s did not finish: hung", what)
		return nil
	}
}

// sshxWaitFor polls cond until it holds; failing after sshxWait.
func sshxWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(sshxWait); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", sshxWait, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// echoChannels accepts every new channel: "echo" ones copy their input
// back and then close, "closer" ones are closed at once by this side, any
// other is rejected; channel requests are answered true.
func echoChannels(chans <-chan ssh.NewChannel) {
	for nch := range chans {
		switch nch.ChannelType() {
		case "echo":
			ch, reqs, err := nch.Accept()
			if err != nil {
				continue
			}
			go replyAll(reqs)
			go func() {
				_, _ = io.Copy(ch, ch)
				_ = ch.CloseWrite()
				_ = ch.Close()
			}()
		case "closer":
			ch, reqs, err := nch.Accept()
			if err != nil {
				continue
			}
			go replyAll(reqs)
			_ = ch.Close()
		default:
			_ = nch.Reject(ssh.Prohibited, "no")
		}
	}
}

func replyAll(reqs <-chan *ssh.Request) {
	for r := range reqs {
		if r.WantReply {
			_ = r.Reply(true, nil)
		}
	}
}

// echoBoth writes data on ch while reading it back, and reports an error
// unless exactly data came back.
func echoBoth(ch ssh.Channel, data []byte) error {
	var back bytes.Buffer
	got := make(chan error, 1)
	go func() {
		_, err := io.Copy(&back, ch)
		got <- err
	}()
	for off := 0; off < len(data); off += 40 << 10 {
		if _, err := ch.Write(data[off:min(off+40<<10, len(data))]); err != nil {
			return err
		}
	}
	if err := ch.CloseWrite(); err != nil {
		return err
	}
	if err := <-got; err != nil {
		return err
	}
	if !bytes.Equal(back.Bytes(), data) {
		return fmt.Errorf("echoed %d bytes, not the %d sent", back.Len(), len(data))
	}
	_ = ch.Close() // io.EOF if the peer's close came first
	return nil
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSSHXOneReaderBulkUnderRekey: bulk data both ways on several
// channels, re-keyed every 64 KiB on both ends, while the client sends
// global and channel requests and opens channels that either side closes:
// every byte arrives, every request is answered, nothing hangs. A loop
// that waited to answer a close (a writer holds the channel's write lock,
// waiting for the exchange) or for a request's consumer (itself waiting
// to reply) would never read the peer's KEXINIT.
func TestSSHXOneReaderBulkUnderRekey(t *testing.T) {
	const rekey = 64 << 10
	p := newOnePair(t, rekey, rekey, nil)
	go echoChannels(p.schans)
	go replyAll(p.sreqs)
	go replyAll(p.creqs)
	go echoChannels(p.cchans)

	const streams = 4
	data := randomBytes(t, 2<<20)
	errs := make(chan error, streams+1)
	stop := make(chan struct{})
	for range streams {
		go func() {
			ch, reqs, err := p.client.OpenChannel("echo", nil)
			if err != nil {
				errs <- err
				return
			}
			go ssh.DiscardRequests(reqs)
			errs <- echoBoth(ch, data)
		}()
	}
	// The same from the server's side: its writes race the client's.
	go func() {
		ch, reqs, err := p.server.OpenChannel("echo", nil)
		if err != nil {
			errs <- err
			return
		}
		go ssh.DiscardRequests(reqs)
		errs <- echoBoth(ch, data)
	}()
	churned := make(chan error, 1)
	go func() {
		churned <- func() error {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return nil
				default:
				}
				if ok, _, err := p.client.SendRequest("keepalive@openssh.com", true, nil); err != nil || !ok {
					return fmt.Errorf("global request %d: %v %v", i, ok, err)
				}
				kind := "echo"
				if i%2 == 1 {
					kind = "closer" // the server closes it
				}
				ch, reqs, err := p.client.OpenChannel(kind, nil)
				if err != nil {
					return fmt.Errorf("open %d: %w", i, err)
				}
				go ssh.DiscardRequests(reqs)
				if kind == "echo" {
					if ok, err := ch.SendRequest("env", true, make([]byte, 100)); err != nil || !ok {
						return fmt.Errorf("channel request %d: %v %v", i, ok, err)
					}
				}
				_ = ch.Close()
			}
		}()
	}()
	for range streams + 1 {
		if err := waitErr(t, errs, "a bulk echo"); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := waitErr(t, churned, "the requests and channels"); err != nil {
		t.Fatal(err)
	}
}

// TestSSHXOneReaderSlowConsumer: the server's consumers of global requests
// and of new channels take nothing for a while, during which both ends
// re-key (64 KiB each way): the exchanges complete and data flows on a
// channel already open; then the consumers get every message, in order.
// The released loop (and a naive single reader) waits on the full queue
// instead and reads nothing more.
func TestSSHXOneReaderSlowConsumer(t *testing.T) {
	const rekey = 64 << 10
	p := newOnePair(t, rekey, rekey, nil)
	go replyAll(p.creqs)
	go echoChannels(p.cchans)
	// The echo channel is accepted before the consumers stall.
	accepted := make(chan error, 1)
	go func() {
		nch := <-p.schans
		ch, reqs, err := nch.Accept()
		if err == nil {
			go replyAll(reqs)
			go func() {
				_, _ = io.Copy(ch, ch)
				_ = ch.CloseWrite()
			}()
		}
		accepted <- err
	}()
	ch, reqs, err := p.client.OpenChannel("echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	if err := waitErr(t, accepted, "accepting the echo channel"); err != nil {
		t.Fatal(err)
	}
	// Nobody reads p.schans or p.sreqs now.
	const requests, opens = 8, 3
	for i := range requests {
		if _, _, err := p.client.SendRequest(fmt.Sprint("r", i), false, nil); err != nil {
			t.Fatal(err)
		}
	}
	opened := make(chan error, opens)
	for range opens {
		go func() {
			ch, reqs, err := p.client.OpenChannel("late", nil)
			if err == nil {
				go ssh.DiscardRequests(reqs)
				err = ch.Close()
			}
			opened <- err
		}()
	}
	data := randomBytes(t, 4<<20)
	echoed := make(chan error, 1)
	go func() { echoed <- echoBoth(ch, data) }()
	if err := waitErr(t, echoed, "the echo while the consumers stall"); err != nil {
		t.Fatal(err)
	}
	// The consumers come back: every message is there, in order.
	for i := range requests {
		select {
		case r := <-p.sreqs:
			if want := fmt.Sprint("r", i); r.Type != want {
				t.Fatalf("request %d is %q, want %q", i, r.Type, want)
			}
		case <-time.After(sshxWait):
			t.Fatalf("request %d never came", i)
		}
	}
	for range opens {
		select {
		case nch := <-p.schans:
			lch, lreqs, err := nch.Accept()
			if err != nil {
				t.Fatal(err)
			}
			go ssh.DiscardRequests(lreqs)
			defer lch.Close()
		case <-time.After(sshxWait):
			t.Fatal("a channel open never came")
		}
	}
	for range opens {
		if err := waitErr(t, opened, "opening a late channel"); err != nil {
			t.Fatal(err)
		}
	}
}

// gatedConn holds what it reads until its gate opens, as a peer that does
// not read; arrived is closed when data came in while the gate was shut.
type gatedConn struct {
	net.Conn
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	arrived chan struct{}
	told    bool
}

func (c *gatedConn) shut() {
	c.mu.Lock()
	c.gate, c.arrived, c.told = make(chan struct{}), make(chan struct{}), false
	c.mu.Unlock()
}

func (c *gatedConn) open() {
	c.mu.Lock()
	if c.gate != nil {
		close(c.gate)
		c.gate = nil
	}
	c.mu.Unlock()
}

func (c *gatedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	gate := c.gate
	if gate != nil && !c.told {
		c.told = true
		close(c.arrived)
	}
	c.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return n, err
}

// TestSSHXOneReaderFloodBounded: while the server's key exchange waits for
// the client's KEXINIT (the client reads nothing), the client closes 100
// channels (each close the server's loop must answer) and floods global
// requests nobody on the server takes yet. The server's loop queues the
// answers past the writers' 64-packet cap, and the requests up to its
// bound, then waits, so what it holds stays bounded (counted through the
// patch's test hook); once the client reads and the consumer takes, the
// exchange ends and everything is delivered.
func TestSSHXOneReaderFloodBounded(t *testing.T) {
	gated := &gatedConn{}
	p := newOnePair(t, 64<<10, 0, func(c net.Conn) net.Conn { gated.Conn = c; return gated })
	hook, ok := p.server.(*ssh.ServerConn).Conn.(sshxQueued)
	if !ok {
		t.Fatal("the server connection has no SSHXQueued hook: is the patch applied?")
	}
	go replyAll(p.creqs)
	go echoChannels(p.cchans)
	go func() {
		for nch := range p.schans {
			_, reqs, err := nch.Accept()
			if err == nil {
				go ssh.DiscardRequests(reqs)
			}
		}
	}()
	const closes = 100
	chans := make([]ssh.Channel, closes)
	for i := range chans {
		ch, reqs, err := p.client.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		go ssh.DiscardRequests(reqs)
		chans[i] = ch
	}
	gated.shut()
	// Past the server's 64 KiB read threshold: its next packet starts an
	// exchange, whose KEXINIT the client holds unread.
	if _, _, err := p.client.SendRequest("big", false, make([]byte, 80<<10)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.client.SendRequest("nudge", false, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gated.arrived:
	case <-time.After(sshxWait):
		t.Fatal("the server never sent its KEXINIT")
	}
	for _, ch := range chans {
		if err := ch.Close(); err != nil {
			t.Fatal(err)
		}
	}
	const flood = 300
	flooded := make(chan error, 1)
	go func() {
		for i := range flood {
			if _, _, err := p.client.SendRequest(fmt.Sprint("f", i), false, nil); err != nil {
				flooded <- err
				return
			}
		}
		flooded <- nil
	}()
	sshxWaitFor(t, "the server's loop to queue every close's answer and fill its request overflow", func() bool {
		pending, _, feeds, _ := hook.SSHXQueued()
		return pending == closes && feeds == sshxMaxFeeds
	})
	if _, pendingMost, _, feedsMost := hook.SSHXQueued(); pendingMost > sshxMaxPending || feedsMost > sshxMaxFeeds {
		t.Fatalf("the server's loop held %d packets and %d requests; bounds %d and %d", pendingMost, feedsMost, sshxMaxPending, sshxMaxFeeds)
	}
	// Consumer and client come back.
	gated.open()
	want := append([]string{"big", "nudge"}, make([]string, flood)...)
	for i := range flood {
		want[2+i] = fmt.Sprint("f", i)
	}
	for i, w := range want {
		select {
		case r := <-p.sreqs:
			if r.Type != w {
				t.Fatalf("request %d is %q, want %q", i, r.Type, w)
			}
		case <-time.After(sshxWait):
			t.Fatalf("request %d (%s) never came", i, w)
		}
	}
	if err := waitErr(t, flooded, "the flood"); err != nil {
		t.Fatal(err)
	}
	go replyAll(p.sreqs)
	answered := make(chan error, 1)
	go func() {
		ok, _, err := p.client.SendRequest("after", true, nil)
		if err == nil && !ok {
			err = fmt.Errorf("refused")
		}
		answered <- err
	}()
	if err := waitErr(t, answered, "a request after the exchange"); err != nil {
		t.Fatal(err)
	}
	sshxWaitFor(t, "the exchange's queue to empty", func() bool {
		pending, _, feeds, feedsMost := hook.SSHXQueued()
		if feedsMost > sshxMaxFeeds {
			t.Fatalf("%d requests queued, bound %d", feedsMost, sshxMaxFeeds)
		}
		return pending == 0 && feeds == 0
	})
}

// TestSSHXOneReaderPerConnection: an idle client and server connection
// pair with one session channel has one goroutine reading each
// connection (the mux's loop), and no readLoop, kexLoop or overflow
// drainer (SSHX.md, 7 and 14).
func TestSSHXOneReaderPerConnection(t *testing.T) {
	count := func() map[string]int {
		buf := make([]byte, 8<<20)
		s := string(buf[:runtime.Stack(buf, true)])
		m := map[string]int{}
		for _, f := range []string{"(*mux).loop(", "(*handshakeTransport).readLoop(", "(*handshakeTransport).kexLoop(", "drainFeed["} {
			m[f] = strings.Count(s, "ssh."+f)
		}
		return m
	}
	before := count()
	p := newOnePair(t, 64<<10, 64<<10, nil)
	go replyAll(p.creqs)
	go echoChannels(p.cchans)
	go replyAll(p.sreqs)
	go echoChannels(p.schans)
	ch, reqs, err := p.client.OpenChannel("echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	// 256 KiB each way: a few exchanges, so kexLoops ran.
	data := randomBytes(t, 256<<10)
	for off := 0; off < len(data); off += 32 << 10 {
		if _, err := ch.Write(data[off : off+32<<10]); err != nil {
			t.Fatal(err)
		}
		back := make([]byte, 32<<10)
		if _, err := io.ReadFull(ch, back); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, data[off:off+32<<10]) {
			t.Fatal("echo differs")
		}
	}
	var now map[string]int
	sshxWaitFor(t, "the pair to be idle", func() bool {
		now = count()
		return now["(*handshakeTransport).kexLoop("] == before["(*handshakeTransport).kexLoop("] &&
			now["drainFeed["] == before["drainFeed["]
	})
	if got := now["(*mux).loop("] - before["(*mux).loop("]; got != 2 {
		t.Errorf("%d mux loops for a connection pair, want 2", got)
	}
	if got := now["(*handshakeTransport).readLoop("] - before["(*handshakeTransport).readLoop("]; got != 0 {
		t.Errorf("%d readLoops for a connection pair, want 0", got)
	}
}
