// Package quickack makes a TCP connection acknowledge what it reads at
// once, for the first reads of its life: the setup of an SSH connection.
//
// Why: OpenSSH's sshd leaves Nagle's algorithm on until a session starts,
// and after authentication it writes two small packets back to back (a
// hostkeys-00@openssh.com notice, then the answer the gateway waits for).
// Nagle holds the second until the first is acknowledged, and Linux delays
// that acknowledgement by up to 40 ms when the reader has nothing to send:
// about half of all gateway setups paid those 40 ms. Acknowledging at once
// removes the wait without touching the peer. Only the first reads pay the
// extra system call, so bulk transfers later on the same connection do not.
package quickack

import (
	"net"
	"sync/atomic"
)

// SetupReads is how many reads of a wrapped connection acknowledge at once:
// enough for key exchange, authentication and the first channels and
// requests of a session, few enough that a bulk transfer does not pay.
const SetupReads = 64

// Conn acknowledges at once after each of its first reads that return
// data. Create it with Wrap.
type Conn struct {
	net.Conn
	left atomic.Int32
	ack  func() // sends a pending acknowledgement now; nil if unsupported
}

// Wrap returns nc acknowledging at once for its first n reads. A
// connection that is not TCP, or a platform without TCP_QUICKACK, is
// returned as it is.
func Wrap(nc net.Conn, n int) net.Conn {
	ack := quickAcker(nc)
	if ack == nil || n <= 0 {
		return nc
	}
	c := &Conn{Conn: nc, ack: ack}
	c.left.Store(int32(n))
	return c
}

// Read reads from the connection, then acknowledges what it read at once
// while reads are left. A read into a one-byte buffer neither
// acknowledges nor counts: that is x/crypto reading the peer's version
// line byte by byte, from bytes that arrived together, and a system call
// per byte would cost more than the rest of the setup.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && len(b) > 1 && c.left.Load() > 0 && c.left.Add(-1) >= 0 {
		c.ack()
	}
	return n, err
}
