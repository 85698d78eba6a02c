package quickack

import (
	"cmp"
	"io"
	"net"
	"testing"
)

// countingConn is a Conn whose acknowledgements are counted instead of
// sent, for checking which reads pay for one.
func countingConn(nc net.Conn, n int) (*Conn, *int) {
	var acks int
	c := &Conn{Conn: nc, ack: func() { acks++ }}
	c.left.Store(int32(n))
	return c, &acks
}

// scriptConn returns one chunk per Read: a non-empty chunk reads data, an
// empty one reads nothing.
type scriptConn struct {
	net.Conn
	chunks []string
}

func (s *scriptConn) Read(b []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	c := s.chunks[0]
	s.chunks = s.chunks[1:]
	return copy(b, c), nil
}

func TestOnlyTheFirstReadsWithDataAcknowledge(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chunks  []string
		n       int
		want    int
		bufSize int // 0: 8 bytes
	}{
		{"fewer reads than the budget", []string{"a", "b"}, 4, 2, 0},
		{"more reads than the budget", []string{"a", "b", "c", "d", "e"}, 3, 3, 0},
		{"empty reads do not count", []string{"", "a", "", "b", "c"}, 2, 2, 0},
		{"reading at EOF acknowledges nothing", nil, 2, 0, 0},
		// x/crypto reads the version line into a one-byte buffer.
		{"byte-by-byte reads do not count", []string{"S", "S", "H", "-"}, 2, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, acks := countingConn(&scriptConn{chunks: tc.chunks}, tc.n)
			buf := make([]byte, cmp.Or(tc.bufSize, 8))
			for range len(tc.chunks) + 1 {
				_, _ = c.Read(buf)
			}
			if *acks != tc.want {
				t.Errorf("%d acknowledgements, want %d", *acks, tc.want)
			}
		})
	}
}

func TestWrapLeavesWhatItCannotAcknowledge(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := Wrap(a, SetupReads); got != a {
		t.Errorf("a pipe was wrapped (%T): only TCP connections can acknowledge at once", got)
	}
	tcp, peer := tcpPair(t)
	if got := Wrap(tcp, 0); got != tcp {
		t.Errorf("Wrap with no reads returned %T, want the connection itself", got)
	}
	_ = peer
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	accepted := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		accepted <- res{c, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-accepted
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return c.(*net.TCPConn), r.c.(*net.TCPConn)
}
