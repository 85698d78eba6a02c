package sshgate

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// channelPair opens a session channel over loopback TCP between two
// x/crypto connections: local is the side a pump reads (the gateway's),
// remote the side that writes to it.
func channelPair(t *testing.T) (local, remote ssh.Channel) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvCfg := &ssh.ServerConfig{NoClientAuth: true}
	srvCfg.AddHostKey(hostKey)
	accepted := make(chan ssh.Channel, 1)
	go func() {
		defer close(accepted)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		sc, nchans, reqs, err := ssh.NewServerConn(c, srvCfg)
		if err != nil {
			return
		}
		t.Cleanup(func() { sc.Close() })
		go ssh.DiscardRequests(reqs)
		nch, ok := <-nchans
		if !ok {
			return
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			return
		}
		go ssh.DiscardRequests(creqs)
		accepted <- ch
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc, cchans, creqs, err := ssh.NewClientConn(raw, ln.Addr().String(), &ssh.ClientConfig{
		User:            "u",
		HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	go ssh.DiscardRequests(creqs)
	go func() {
		for nch := range cchans {
			_ = nch.Reject(ssh.Prohibited, "no")
		}
	}()
	ch, reqs, err := cc.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	remote, ok := <-accepted
	if !ok {
		t.Fatal("server side of the channel failed")
	}
	return ch, remote
}

// safeBuffer is a bytes.Buffer a pump writes while the test reads it.
type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

// waitFor polls cond: a bound against a hang, not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPumpCopiesStreams: each stream arrives whole and in order, in any
// pattern of writes, past the channel's 2 MiB window, and the pump ends at
// the stream's end (data: EOF; stderr: the channel's close).
func TestPumpCopiesStreams(t *testing.T) {
	for _, tc := range []struct {
		name  string
		code  uint32
		size  int
		chunk int
	}{
		{"data, one byte", 0, 1, 1},
		{"data, keystrokes", 0, 300, 1},
		{"data, small writes", 0, 100 << 10, 700},
		{"data, past the window", 0, 5 << 20, 1 << 20},
		{"stderr, small", 1, 64, 64},
		{"stderr, past the window", 1, 3 << 20, 100 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local, remote := channelPair(t)
			var dst safeBuffer
			thens := 0
			p := startPump(local, tc.code, &dst, &activity{}, nil, func() { thens++ })
			if p == nil {
				t.Fatal("the channel cannot announce data: internal/sshx is not in use")
			}
			data := pattern(tc.size)
			w := remote.(interface {
				WriteExtended([]byte, uint32) (int, error)
			})
			for off := 0; off < len(data); off += tc.chunk {
				if _, err := w.WriteExtended(data[off:min(off+tc.chunk, len(data))], tc.code); err != nil {
					t.Fatal(err)
				}
			}
			if tc.code == 0 {
				_ = remote.CloseWrite()
			} else {
				_ = remote.Close()
			}
			<-p.done
			if got := dst.Bytes(); !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, equal %v; want the %d sent", len(got), bytes.Equal(got, data), len(data))
			}
			if p.written() != int64(len(data)) || thens != 1 {
				t.Fatalf("written %d, then ran %d times; want %d, 1", p.written(), thens, len(data))
			}
		})
	}
}

// TestPumpIdleHoldsNothing: between bursts a pump has no goroutine and no
// buffer, and nothing waits in the channel's Read; the next byte starts it
// again. This is what takes an idle session from 10 goroutines to 8.
func TestPumpIdleHoldsNothing(t *testing.T) {
	// Other tests of the binary may have left goroutines reading their
	// own channels: count, and compare with that.
	waiting := func() (run, read int) {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		return strings.Count(stacks, "(*pump).run"), strings.Count(stacks, "(*buffer).Read")
	}
	local, remote := channelPair(t)
	_, readers := waiting()
	var dst safeBuffer
	p := startPump(local, 0, &dst, &activity{}, nil, nil)
	if p == nil {
		t.Fatal("the channel cannot announce data: internal/sshx is not in use")
	}
	var sent []byte
	for i, burst := range [][]byte{[]byte("l"), []byte("s -l\r"), pattern(300 << 10), []byte("x")} {
		if _, err := remote.Write(burst); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, burst...)
		waitFor(t, "the burst", func() bool { return len(dst.Bytes()) == len(sent) })
		waitFor(t, "the pump to go idle", func() bool { return p.state.Load() == pumpIdle })
		if run, read := waiting(); run > 0 || read > readers {
			t.Fatalf("after burst %d, idle: %d goroutines in pump.run, %d in a channel's Read (%d before the pump)", i, run, read, readers)
		}
	}
	if !bytes.Equal(dst.Bytes(), sent) {
		t.Fatal("bytes differ from what was sent")
	}
	_ = remote.CloseWrite()
	<-p.done
}

// TestPumpWakesDuringWrite: data that arrives while a run is blocked
// writing (the other leg's window is full) is copied by that run, in
// order, and none is left behind when the run stops.
func TestPumpWakesDuringWrite(t *testing.T) {
	local, remote := channelPair(t)
	release := make(chan struct{})
	dst := &gatedWriter{release: release}
	p := startPump(local, 0, dst, &activity{}, nil, nil)
	if p == nil {
		t.Fatal("the channel cannot announce data: internal/sshx is not in use")
	}
	var sent []byte
	for i := range 200 {
		b := []byte{byte(i), byte(i >> 8), '\n'}
		if _, err := remote.Write(b); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, b...)
	}
	waitFor(t, "a write to block", func() bool { return dst.blocked.Load() })
	close(release)
	waitFor(t, "all of it", func() bool { return len(dst.buf.Bytes()) == len(sent) })
	if !bytes.Equal(dst.buf.Bytes(), sent) {
		t.Fatal("bytes differ from what was sent")
	}
	_ = remote.CloseWrite()
	<-p.done
}

// gatedWriter blocks its first Write until release is closed.
type gatedWriter struct {
	release chan struct{}
	blocked atomic.Bool
	buf     safeBuffer
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.blocked.Store(true)
	<-w.release
	return w.buf.Write(p)
}

// TestPumpStopsOnWriteError: a failed write ends the pump (then runs,
// done closes) and later data is not written anywhere.
func TestPumpStopsOnWriteError(t *testing.T) {
	local, remote := channelPair(t)
	dst := &failingWriter{}
	thens := 0
	p := startPump(local, 0, dst, &activity{}, nil, func() { thens++ })
	if p == nil {
		t.Fatal("the channel cannot announce data: internal/sshx is not in use")
	}
	if _, err := remote.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if _, err := remote.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	_ = remote.CloseWrite()
	if dst.writes.Load() != 1 || thens != 1 || p.written() != 0 {
		t.Fatalf("writes %d, then %d, written %d; want 1, 1, 0", dst.writes.Load(), thens, p.written())
	}
}

type failingWriter struct{ writes atomic.Int32 }

func (w *failingWriter) Write(p []byte) (int, error) {
	w.writes.Add(1)
	return 0, errors.New("client gone")
}

// TestPumpFilters: with a filter (the line gate), what is written is the
// filter's output for each read, and an empty output writes nothing.
func TestPumpFilters(t *testing.T) {
	local, remote := channelPair(t)
	var dst safeBuffer
	// Drops 'x', doubles everything else.
	filter := func(out, in []byte) []byte {
		for _, b := range in {
			if b != 'x' {
				out = append(out, b, b)
			}
		}
		return out
	}
	p := startPump(local, 0, &dst, &activity{}, filter, nil)
	if p == nil {
		t.Fatal("the channel cannot announce data: internal/sshx is not in use")
	}
	for _, s := range []string{"ab", "xxx", "c"} {
		if _, err := remote.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	_ = remote.CloseWrite()
	<-p.done
	if got := string(dst.Bytes()); got != "aabbcc" {
		t.Fatalf("got %q, want %q", got, "aabbcc")
	}
}
