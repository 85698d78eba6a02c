package sshgate_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// The gateway is built on internal/sshx, golang.org/x/crypto v0.58.0 with a
// small patch to its ssh package (go.mod replaces the module; see
// internal/sshx/SSHX.md). These tests hold the patch to what it says: the
// copy holds only files of the released module (the packages the build
// uses, without their tests), differs from it in the patched files only,
// by exactly SSHX.patch, and what the patch changes works on a real
// connection.

// sshxPatched are the files SSHX.patch changes; sshxAdded are files the
// copy has that the release has not.
var (
	sshxPatched = []string{"ssh/buffer.go", "ssh/channel.go", "ssh/cipher.go", "ssh/common.go", "ssh/handshake.go", "ssh/messages.go", "ssh/mux.go", "ssh/server.go", "ssh/transport.go"}
	sshxAdded   = []string{"SSHX.md", "SSHX.patch"}
)

func TestSSHXDiffersFromReleaseOnlyByPatch(t *testing.T) {
	if _, err := exec.LookPath("diff"); err != nil {
		t.Skip("needs diff")
	}
	out, err := exec.Command("go", "mod", "download", "-json", "golang.org/x/crypto@v0.58.0").Output()
	if err != nil {
		t.Skipf("the released module is not available here: %v", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %v %s", err, out)
	}
	fork, err := filepath.Abs(filepath.Join("..", "sshx"))
	if err != nil {
		t.Fatal(err)
	}
	release, forked := treeFiles(t, mod.Dir), treeFiles(t, fork)
	for _, name := range sshxAdded {
		if !slices.Contains(forked, name) {
			t.Errorf("internal/sshx lacks %s", name)
		}
		forked = slices.DeleteFunc(forked, func(s string) bool { return s == name })
	}
	// The copy is trimmed to what the build imports (go build fails on
	// a missing package), so it need not hold every file of the release;
	// every file it holds must be one.
	for _, name := range forked {
		if !slices.Contains(release, name) {
			t.Errorf("internal/sshx/%s is not a file of x/crypto v0.58.0", name)
		}
	}
	for _, name := range sshxPatched {
		if !slices.Contains(forked, name) {
			t.Errorf("internal/sshx lacks the patched %s", name)
		}
	}
	var diff bytes.Buffer
	for _, name := range forked {
		a, b := filepath.Join(mod.Dir, name), filepath.Join(fork, name)
		if !slices.Contains(sshxPatched, name) {
			if !sameFile(t, a, b) {
				t.Errorf("internal/sshx/%s differs from the release but is not in the patch", name)
			}
			continue
		}
		cmd := exec.Command("diff", "-u", "--label", "a/"+name, "--label", "b/"+name, a, b)
		cmd.Stdout = &diff
		if err := cmd.Run(); err == nil {
			t.Errorf("internal/sshx/%s is listed as patched but equals the release", name)
		}
	}
	want, err := os.ReadFile(filepath.Join(fork, "SSHX.patch"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(diff.Bytes(), want) {
		t.Fatalf("internal/sshx differs from the release by something other than SSHX.patch; regenerate it as SSHX.md says and review the difference:\n%s", diff.String())
	}
}

func treeFiles(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		names = append(names, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// countingConn counts the Write calls made on a connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// gcmPair connects an x/crypto client and server over loopback TCP with
// aes128-gcm, the cipher the gateway's legs use. The client's connection
// counts its writes.
func gcmPair(t *testing.T) (client ssh.Conn, server <-chan ssh.NewChannel, counted *countingConn) {
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
	chans := make(chan (<-chan ssh.NewChannel), 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(chans)
			return
		}
		sc, nchans, reqs, err := ssh.NewServerConn(c, srvCfg)
		if err != nil {
			close(chans)
			return
		}
		t.Cleanup(func() { sc.Close() })
		go ssh.DiscardRequests(reqs)
		chans <- nchans
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	counted = &countingConn{Conn: raw}
	cc, cchans, creqs, err := ssh.NewClientConn(counted, ln.Addr().String(), &ssh.ClientConfig{
		User:            "u",
		HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()),
		Config:          ssh.Config{Ciphers: []string{"aes128-gcm@openssh.com"}},
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
	nchans, ok := <-chans
	if !ok {
		t.Fatal("server handshake failed")
	}
	return cc, nchans, counted
}

// TestSSHXOneWritePerPacket: a full data packet leaves in one write system
// call. Released x/crypto writes the 4-byte length into its 4 KiB bufio
// buffer first, so every large packet cost a 4 KiB write and then the rest.
func TestSSHXOneWritePerPacket(t *testing.T) {
	client, nchans, counted := gcmPair(t)
	received := make(chan int64, 1)
	go func() {
		nch := <-nchans
		ch, reqs, err := nch.Accept()
		if err != nil {
			received <- -1
			return
		}
		go ssh.DiscardRequests(reqs)
		n, _ := io.Copy(io.Discard, ch)
		received <- n
		ch.Close()
	}()
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	const packets = 64
	data := make([]byte, packets<<15) // x/crypto's peer takes 32 KiB per packet
	before := counted.writes.Load()
	if _, err := ch.Write(data); err != nil {
		t.Fatal(err)
	}
	writes := counted.writes.Load() - before
	if err := ch.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n := <-received; n != int64(len(data)) {
		t.Fatalf("received %d of %d bytes", n, len(data))
	}
	// One write per data packet; a few more are window adjustments and
	// the like, never one per packet.
	if writes > packets+packets/4 {
		t.Fatalf("%d writes for %d data packets: want about one each", writes, packets)
	}
}

// TestSSHXPooledPacketsKeepData: received packets' buffers are reused once
// their data has been read (SSHX.md). Many channels at once, each with its
// own bytes and read in odd sizes, must each get exactly what was sent: a
// buffer reused while still referenced would mix them.
func TestSSHXPooledPacketsKeepData(t *testing.T) {
	client, nchans, _ := gcmPair(t)
	const channels, size = 6, 3 << 20
	go func() {
		for nch := range nchans {
			go func() {
				ch, reqs, err := nch.Accept()
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				defer ch.Close()
				// Echo the data back with small, uneven reads, so that
				// packets are consumed in pieces.
				buf := make([]byte, 7777)
				for {
					n, err := ch.Read(buf)
					if _, werr := ch.Write(buf[:n]); werr != nil {
						return
					}
					if err != nil {
						break
					}
				}
				_ = ch.CloseWrite()
			}()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan string, channels)
	for i := range channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch, reqs, err := client.OpenChannel("session", nil)
			if err != nil {
				errs <- err.Error()
				return
			}
			go ssh.DiscardRequests(reqs)
			data := make([]byte, size)
			seed, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
			x := seed.Uint64() | uint64(i)
			for j := range data {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				data[j] = byte(x)
			}
			var echoed bytes.Buffer
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _ = io.Copy(&echoed, ch)
			}()
			for off := 0; off < len(data); off += 50000 {
				if _, err := ch.Write(data[off:min(off+50000, len(data))]); err != nil {
					errs <- err.Error()
					return
				}
			}
			_ = ch.CloseWrite()
			<-done
			if !bytes.Equal(echoed.Bytes(), data) {
				errs <- "channel got other bytes back than it sent"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestSSHXIdleChannelsKeepNoLargeBuffers: after a bulk transfer, an idle
// channel and its connection hold no packet-sized buffer. Released x/crypto
// keeps, per channel, the largest packet it ever sent and the last one it
// received, and per connection its cipher's largest buffers: about 170 KiB
// per channel here.
func TestSSHXIdleChannelsKeepNoLargeBuffers(t *testing.T) {
	client, nchans, _ := gcmPair(t)
	const channels, size = 100, 256 << 10
	go func() {
		for nch := range nchans {
			go func() {
				ch, reqs, err := nch.Accept()
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				// Echo size bytes back, then idle until the test ends.
				_, _ = io.CopyN(ch, ch, size)
			}()
		}
	}()
	// Every allocation is profiled while the test runs, and what the ssh
	// package still holds is read from the heap profile: unlike HeapAlloc,
	// that does not move with what the race detector or other tests'
	// leftovers allocate meanwhile.
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	heap := func() int64 {
		for range 3 {
			runtime.GC() // the profile lags up to two cycles; a sync.Pool empties over two
		}
		var recs []runtime.MemProfileRecord
		n, _ := runtime.MemProfile(nil, false)
		for {
			recs = make([]runtime.MemProfileRecord, n+64)
			var ok bool
			if n, ok = runtime.MemProfile(recs, false); ok {
				recs = recs[:n]
				break
			}
		}
		var inUse int64
		for _, r := range recs {
			frames := runtime.CallersFrames(r.Stack())
			for {
				f, more := frames.Next()
				if strings.HasPrefix(f.Function, "golang.org/x/crypto/ssh.") {
					inUse += r.InUseBytes()
					break
				}
				if !more {
					break
				}
			}
		}
		return inUse
	}
	before := heap()
	data := make([]byte, size)
	var open []ssh.Channel
	for range channels {
		ch, reqs, err := client.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		go ssh.DiscardRequests(reqs)
		open = append(open, ch)
		done := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(ch, make([]byte, size))
			done <- err
		}()
		if _, err := ch.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	data = nil
	grown := heap() - before
	t.Logf("the ssh package holds %d KiB more for %d idle channels after %d KiB each way", grown>>10, channels, size>>10)
	// A channel's own state is a few KiB; one kept packet is 32 KiB.
	if limit := int64(channels) * 16 << 10; grown > limit {
		t.Fatalf("the ssh package holds %d KiB more for %d idle channels: want under %d KiB", grown>>10, channels, limit>>10)
	}
	runtime.KeepAlive(open)
}

// TestSSHXBulkAllocatesLittle: a bulk transfer reuses packet buffers
// instead of allocating one per packet (and a collection every few MB).
// The release allocates about 1,300 KiB per MiB moved through a GCM
// channel, both ends in this process; patched, about 170 KiB (about 720
// under the race detector, which drops a quarter of what goes back to a
// sync.Pool).
func TestSSHXBulkAllocatesLittle(t *testing.T) {
	client, nchans, _ := gcmPair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		nch := <-nchans
		ch, reqs, err := nch.Accept()
		if err != nil {
			return
		}
		go ssh.DiscardRequests(reqs)
		_, _ = io.Copy(io.Discard, ch)
		ch.Close()
	}()
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	const mib = 32
	data := make([]byte, 1<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range mib {
		if _, err := ch.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	<-done
	runtime.ReadMemStats(&after)
	perMiB := (after.TotalAlloc - before.TotalAlloc) / mib
	t.Logf("allocated %d KiB per MiB moved, %d collections", perMiB>>10, after.NumGC-before.NumGC)
	if perMiB > 1000<<10 {
		t.Fatalf("allocated %d KiB per MiB moved: packet buffers are not reused", perMiB>>10)
	}
}

// TestSSHXKexLoopOnlyWhileExchanging: x/crypto's key-exchange loop runs
// only while there is an exchange to do (SSHX.md, 7), yet every exchange
// still happens: with a rekey threshold of 64 KiB, 4 MiB each way re-key
// both connections dozens of times and arrive whole; once the transfer
// is over, neither connection keeps a kexLoop goroutine.
func TestSSHXKexLoopOnlyWhileExchanging(t *testing.T) {
	kexLoops := func() int {
		buf := make([]byte, 4<<20)
		return strings.Count(string(buf[:runtime.Stack(buf, true)]), "(*handshakeTransport).kexLoop(")
	}
	before := kexLoops()
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
	const rekey = 64 << 10
	srvCfg := &ssh.ServerConfig{NoClientAuth: true, Config: ssh.Config{RekeyThreshold: rekey}}
	srvCfg.AddHostKey(hostKey)
	echoed := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			echoed <- err
			return
		}
		sc, nchans, reqs, err := ssh.NewServerConn(c, srvCfg)
		if err != nil {
			echoed <- err
			return
		}
		t.Cleanup(func() { sc.Close() })
		go ssh.DiscardRequests(reqs)
		ch, creqs, err := (<-nchans).Accept()
		if err != nil {
			echoed <- err
			return
		}
		go ssh.DiscardRequests(creqs)
		_, err = io.Copy(ch, ch)
		_ = ch.CloseWrite()
		echoed <- err
	}()
	cc, err := ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{
		User:            "u",
		HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()),
		Config:          ssh.Config{RekeyThreshold: rekey, Ciphers: []string{"aes128-gcm@openssh.com"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ch, reqs, err := cc.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	data := make([]byte, 4<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	var back bytes.Buffer
	got := make(chan struct{})
	go func() {
		defer close(got)
		_, _ = io.Copy(&back, ch)
	}()
	for off := 0; off < len(data); off += 100 << 10 {
		if _, err := ch.Write(data[off:min(off+100<<10, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	_ = ch.CloseWrite()
	<-got
	if err := <-echoed; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Bytes(), data) {
		t.Fatalf("echoed %d bytes, equal %v; want the %d sent", back.Len(), bytes.Equal(back.Bytes(), data), len(data))
	}
	// Idle now: the loops park at their next look. Both connections are
	// up (the channel is still open), so a kexLoop left is one parked
	// too late or never.
	for deadline := time.Now().Add(30 * time.Second); kexLoops() > before; {
		if time.Now().After(deadline) {
			t.Fatalf("%d kexLoop goroutines on two idle connections (%d before they were made)", kexLoops(), before)
		}
		time.Sleep(time.Millisecond)
	}
	// Exchanges still start and finish once the loops have parked: each
	// request carries a rekey threshold's worth, and a stuck exchange
	// would hold its answer.
	answered := make(chan error, 1)
	go func() {
		for range 4 {
			if _, _, err := cc.SendRequest("portcullis-test@example.com", true, make([]byte, rekey)); err != nil {
				answered <- err
				return
			}
		}
		answered <- nil
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("requests sent after the kexLoops parked got no answer: a key exchange is stuck")
	}
}
