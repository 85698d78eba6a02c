package sshgate_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/crypto/ssh"
)

// rekeyedGCMPair is gcmPair with both ends re-keying every rekey bytes
// (0: the default threshold).
func rekeyedGCMPair(t *testing.T, rekey uint64) (ssh.Conn, <-chan ssh.NewChannel) {
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
	cfg := ssh.Config{RekeyThreshold: rekey, Ciphers: []string{"aes128-gcm@openssh.com"}}
	srvCfg := &ssh.ServerConfig{NoClientAuth: true, Config: cfg}
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
	cc, err := ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{
		User:            "u",
		HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()),
		Config:          cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	nchans, ok := <-chans
	if !ok {
		t.Fatal("server handshake failed")
	}
	return cc, nchans
}

// narrowChannel makes ch write as if its peer had announced a maximum
// packet of maxPacket bytes and, if window > 0, had granted only window
// bytes so far (then only what the peer reads grants more). x/crypto always
// announces 32 KiB and 2 MiB, and other peers differ: this reaches the
// channel's fields, which must exist (the test fails if they are renamed).
// It must run before anything writes on ch.
func narrowChannel(t *testing.T, ch ssh.Channel, maxPacket, window uint32) {
	t.Helper()
	v := reflect.ValueOf(ch)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		t.Fatalf("channel is a %T, not a pointer to a struct", ch)
	}
	s := v.Elem()
	if maxPacket > 0 {
		f := s.FieldByName("maxRemotePayload")
		if !f.IsValid() || f.Kind() != reflect.Uint32 {
			t.Fatalf("%T has no maxRemotePayload uint32", ch)
		}
		*(*uint32)(unsafe.Pointer(f.UnsafeAddr())) = maxPacket
	}
	if window > 0 {
		w := s.FieldByName("remoteWin")
		if !w.IsValid() || w.Kind() != reflect.Struct {
			t.Fatalf("%T has no remoteWin struct", ch)
		}
		c, win := w.FieldByName("Cond"), w.FieldByName("win")
		if !c.IsValid() || c.Type() != reflect.TypeOf(&sync.Cond{}) || !win.IsValid() || win.Kind() != reflect.Uint32 {
			t.Fatalf("%T's remoteWin has no *sync.Cond and win uint32", ch)
		}
		cond := *(**sync.Cond)(unsafe.Pointer(c.UnsafeAddr()))
		cond.L.Lock()
		*(*uint32)(unsafe.Pointer(win.UnsafeAddr())) = window
		cond.L.Unlock()
	}
}

// TestSSHXBatchedWritesKeepData: a channel write of several packets seals
// them into one buffer that leaves in one Write (SSHX.md). Whatever the
// peer's packet size and window and however often the keys change, every
// byte arrives once and in order on its own stream: the client sends
// uneven chunks of several packets each, and the server echoes each chunk
// on stdout and on stderr from two goroutines at once, so data and
// extended data packets of one channel interleave in and between batches,
// windows run out in the middle of batches, and key exchanges start in
// the middle of batches on both connections.
func TestSSHXBatchedWritesKeepData(t *testing.T) {
	cases := []struct {
		name      string
		rekey     uint64
		maxPacket uint32 // 0: the peer's 32 KiB
		window    uint32 // 0: the peer's 2 MiB; x/crypto grants more once 96 KiB were read
		size      int
	}{
		{"defaults", 0, 0, 0, 4 << 20},
		{"small window", 0, 0, 100<<10 + 1, 4 << 20},
		{"rekey every 64 KiB", 64 << 10, 0, 0, 4 << 20},
		{"rekey every 64 KiB, small window", 64 << 10, 0, 100<<10 + 1, 2 << 20},
		{"max packet 1 KiB", 0, 1 << 10, 0, 2 << 20},
		{"max packet 1 KiB, rekey every 64 KiB, small window", 64 << 10, 1 << 10, 100<<10 + 1, 1 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, nchans := rekeyedGCMPair(t, tc.rekey)
			served := make(chan error, 1)
			go func() {
				nch, ok := <-nchans
				if !ok {
					served <- fmt.Errorf("no channel")
					return
				}
				ch, reqs, err := nch.Accept()
				if err != nil {
					served <- err
					return
				}
				go ssh.DiscardRequests(reqs)
				narrowChannel(t, ch, tc.maxPacket, tc.window)
				served <- echoTwice(ch)
			}()
			ch, reqs, err := client.OpenChannel("session", nil)
			if err != nil {
				t.Fatal(err)
			}
			go ssh.DiscardRequests(reqs)
			narrowChannel(t, ch, tc.maxPacket, tc.window)
			data := make([]byte, tc.size)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			var readers sync.WaitGroup
			readers.Add(2)
			go func() {
				defer readers.Done()
				_, _ = io.Copy(&out, ch)
			}()
			go func() {
				defer readers.Done()
				_, _ = io.Copy(&errOut, ch.Stderr())
			}()
			wrote := make(chan error, 1)
			go func() {
				// Uneven chunks, each several packets long, so that
				// batches and windows end at odd places.
				step := 100<<10 + 37
				if tc.maxPacket > 0 {
					step = 5*int(tc.maxPacket) + 37
				}
				for off := 0; off < len(data); off += step {
					if _, err := ch.Write(data[off:min(off+step, len(data))]); err != nil {
						wrote <- err
						return
					}
				}
				wrote <- ch.CloseWrite()
			}()
			// A lost or held batch stalls the transfer instead of
			// failing it: bound the wait so that it fails with a reason.
			done := make(chan struct{})
			go func() {
				readers.Wait()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Minute):
				t.Fatal("stalled: stdout and stderr did not both end")
			}
			if err := <-wrote; err != nil {
				t.Fatal(err)
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Errorf("stdout: %d bytes back, not the %d sent in order", out.Len(), len(data))
			}
			if !bytes.Equal(errOut.Bytes(), data) {
				t.Errorf("stderr: %d bytes back, not the %d sent in order", errOut.Len(), len(data))
			}
		})
	}
}

// echoTwice writes everything read from ch back on ch and on its stderr,
// from two goroutines, in chunks of what each read returned.
func echoTwice(ch ssh.Channel) error {
	defer ch.Close()
	toOut, toErr := make(chan []byte, 4), make(chan []byte, 4)
	errs := make(chan error, 2)
	pass := func(w io.Writer, in <-chan []byte) {
		var err error
		for b := range in {
			if err == nil {
				_, err = w.Write(b)
			}
		}
		errs <- err
	}
	go pass(ch, toOut)
	go pass(ch.Stderr(), toErr)
	var rerr error
	for {
		buf := make([]byte, 200<<10)
		n, err := ch.Read(buf)
		if n > 0 {
			toOut <- buf[:n]
			toErr <- buf[:n]
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	close(toOut)
	close(toErr)
	for range 2 {
		if err := <-errs; err != nil && rerr == nil {
			rerr = err
		}
	}
	if rerr != nil {
		return rerr
	}
	return ch.CloseWrite()
}
