package proxyproto

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	pp "github.com/pires/go-proxyproto"
)

// headerBufferSize holds any v1 header (107 bytes at most) in one read, as
// the parser requires, and the fixed part of a v2 header with its
// addresses; longer v2 headers (TLVs) are read in several fills.
const headerBufferSize = 256

// readHeader reads the PROXY header that must open raw, within timeout, and
// returns the connection to serve: its RemoteAddr is the header's source.
func readHeader(raw net.Conn, timeout time.Duration) (net.Conn, error) {
	if err := raw.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("set header deadline: %w", err)
	}
	br := bufio.NewReaderSize(raw, headerBufferSize)
	remote, err := parseHeader(br, raw.RemoteAddr())
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("no complete PROXY protocol header within %s", timeout)
		}
		return nil, err
	}
	// The SSH and TLS layers set deadlines of their own.
	if err := raw.SetReadDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear header deadline: %w", err)
	}
	// Whatever came with the header (a TLS ClientHello, an SSH version
	// line) was read into the buffer and must be served first.
	rest, _ := br.Peek(br.Buffered())
	return &conn{Conn: raw, remote: remote, pending: bytes.Clone(rest)}, nil
}

// parseHeader reads one PROXY protocol header from r, sent by peer, and
// returns the client's address: the header's source, or peer itself for a
// connection the balancer made on its own behalf (v2 LOCAL, v1 UNKNOWN).
// On success r is positioned just past the header.
func parseHeader(r *bufio.Reader, peer net.Addr) (net.Addr, error) {
	h, err := pp.Read(r)
	switch {
	case errors.Is(err, pp.ErrNoProxyProtocol):
		return nil, errors.New("connection does not start with a PROXY protocol v1 or v2 header")
	case err != nil:
		return nil, fmt.Errorf("read PROXY protocol header: %w", err)
	case h.Command.IsLocal():
		// Health checks: the balancer speaks for itself.
		return peer, nil
	}
	src, _, ok := h.TCPAddrs()
	if !ok || src == nil || src.IP == nil {
		// Only TCP is served here; a UDP or unix source on a TCP stream is
		// a misconfigured balancer, not a client address to believe.
		return nil, fmt.Errorf("PROXY protocol header names a non-TCP source (address family and protocol 0x%02x)", byte(h.TransportProtocol))
	}
	return src, nil
}

// conn is a connection whose header has been read. Like the SSH and TLS
// layers that use it, it expects one reader at a time.
type conn struct {
	net.Conn
	remote net.Addr
	// pending holds bytes read past the header; Read hands them out
	// before reading the socket again.
	pending []byte
}

// Read implements net.Conn.
func (c *conn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		return n, nil
	}
	return c.Conn.Read(b)
}

// RemoteAddr returns the client's address from the header.
func (c *conn) RemoteAddr() net.Addr { return c.remote }
