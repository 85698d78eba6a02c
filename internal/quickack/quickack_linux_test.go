package quickack

import (
	"io"
	"syscall"
	"testing"
)

// quickAckMode reads TCP_QUICKACK back: on Linux it is 1 when the socket
// acknowledges at once and 0 in the "interactive" mode, where
// acknowledgements wait for data to ride on or for the delayed-ACK timer.
func quickAckMode(t *testing.T, c interface {
	SyscallConn() (syscall.RawConn, error)
}) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// TestSetupReadsLeaveDelayedAckMode plays the request/answer exchange of an
// SSH login on a real loopback connection: the peer writes, the reader
// reads and answers at once. Such an exchange puts Linux's reader into
// delayed-acknowledgement mode; after every read of a wrapped connection
// the socket is back to acknowledging at once, which is what spares a
// peer with Nagle's algorithm on its 40 ms wait.
func TestSetupReadsLeaveDelayedAckMode(t *testing.T) {
	const rounds = 8
	reader, peer := tcpPair(t)
	if err := peer.SetNoDelay(false); err != nil { // like sshd before a session
		t.Fatal(err)
	}
	c := Wrap(reader, rounds)
	if _, ok := c.(*Conn); !ok {
		t.Fatalf("a TCP connection was not wrapped: %T", c)
	}
	buf := make([]byte, 1)
	for i := range rounds {
		if _, err := peer.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		// Into more than one byte, as x/crypto reads packets.
		if _, err := io.ReadAtLeast(c, make([]byte, 16), 1); err != nil {
			t.Fatal(err)
		}
		if got := quickAckMode(t, reader); got != 1 {
			t.Fatalf("after setup read %d the socket delays its acknowledgements (TCP_QUICKACK=%d)", i, got)
		}
		// The answer, sent at once: what makes the kernel see an
		// interactive exchange.
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, buf); err != nil {
			t.Fatal(err)
		}
	}
}
