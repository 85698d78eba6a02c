package proxyproto

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	pp "github.com/pires/go-proxyproto"
)

// syncBuffer is a log sink safe to read while handshake goroutines write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	loopback  = netip.MustParsePrefix("127.0.0.1/32")
	elsewhere = netip.MustParsePrefix("192.0.2.0/24")
)

// listen starts a Listener on loopback trusting the given prefixes.
func listen(t *testing.T, timeout time.Duration, trusted ...netip.Prefix) (*Listener, *syncBuffer) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ln := NewListener(inner, Config{Trusted: trusted, HeaderTimeout: timeout, Log: slog.New(slog.NewTextHandler(logs, nil))})
	t.Cleanup(func() { ln.Close() })
	return ln, logs
}

func dial(t *testing.T, ln net.Listener) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func format(t *testing.T, h *pp.Header) []byte {
	t.Helper()
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func v2(src, dst string) *pp.Header {
	return pp.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
}

// acceptOne accepts one connection in the background, so that a test
// whose connection is refused can still go on.
func acceptOne(ln net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// TestListenerAccepted sends a header from a trusted peer, then payload,
// and checks the accepted connection's address and that the payload sent
// with the header is read whole.
func TestListenerAccepted(t *testing.T) {
	const payload = "SSH-2.0-OpenSSH_9.2\r\n"
	local := &pp.Header{Version: 2, Command: pp.LOCAL, TransportProtocol: pp.UNSPEC}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		header  func(t *testing.T) []byte
		// wantIP is the expected RemoteAddr IP; "peer" means the loopback
		// dialer's own address.
		wantIP   string
		wantPort int
		// wantData is what the server reads, when not just payload.
		wantData string
	}{
		{name: "v1 TCP4", trusted: []netip.Prefix{loopback},
			header: func(*testing.T) []byte { return []byte("PROXY TCP4 203.0.113.9 10.0.0.1 40000 2222\r\n") },
			wantIP: "203.0.113.9", wantPort: 40000},
		{name: "v1 TCP6", trusted: []netip.Prefix{loopback},
			header: func(*testing.T) []byte { return []byte("PROXY TCP6 2001:db8::9 2001:db8::1 40001 2222\r\n") },
			wantIP: "2001:db8::9", wantPort: 40001},
		{name: "v1 UNKNOWN keeps the balancer", trusted: []netip.Prefix{loopback},
			header: func(*testing.T) []byte { return []byte("PROXY UNKNOWN\r\n") },
			wantIP: "peer"},
		{name: "v2 IPv4", trusted: []netip.Prefix{loopback},
			header: func(t *testing.T) []byte { return format(t, v2("203.0.113.9:40002", "10.0.0.1:2222")) },
			wantIP: "203.0.113.9", wantPort: 40002},
		{name: "v2 IPv6", trusted: []netip.Prefix{loopback},
			header: func(t *testing.T) []byte { return format(t, v2("[2001:db8::9]:40003", "[2001:db8::1]:2222")) },
			wantIP: "2001:db8::9", wantPort: 40003},
		{name: "v2 LOCAL keeps the balancer", trusted: []netip.Prefix{loopback},
			header: func(t *testing.T) []byte { return format(t, local) },
			wantIP: "peer"},
		{name: "v2 with TLVs", trusted: []netip.Prefix{loopback},
			header: func(t *testing.T) []byte {
				h := v2("203.0.113.9:40004", "10.0.0.1:2222")
				if err := h.SetTLVs([]pp.TLV{{Type: pp.PP2_TYPE_AUTHORITY, Value: bytes.Repeat([]byte("a"), 600)}}); err != nil {
					t.Fatal(err)
				}
				return format(t, h)
			},
			wantIP: "203.0.113.9", wantPort: 40004},
		{name: "header from a non-balancer is just bytes", trusted: []netip.Prefix{elsewhere},
			header: func(t *testing.T) []byte { return format(t, v2("203.0.113.9:40005", "10.0.0.1:2222")) },
			wantIP: "peer", wantData: string(format(t, v2("203.0.113.9:40005", "10.0.0.1:2222"))) + payload},
		{name: "nothing trusted", trusted: nil,
			header: func(*testing.T) []byte { return []byte("PROXY TCP4 203.0.113.9 10.0.0.1 40000 2222\r\n") },
			wantIP: "peer", wantData: "PROXY TCP4 203.0.113.9 10.0.0.1 40000 2222\r\n" + payload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, logs := listen(t, time.Minute, tt.trusted...)
			accepted := acceptOne(ln)
			client := dial(t, ln)
			// Header and payload in one write, as balancers do: the
			// payload lands in the header buffer and must not be lost.
			if _, err := client.Write(append(tt.header(t), payload...)); err != nil {
				t.Fatal(err)
			}
			if err := client.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			c, ok := <-accepted
			if !ok {
				t.Fatalf("not accepted; log: %s", logs)
			}
			defer c.Close()
			ra, ok := c.RemoteAddr().(*net.TCPAddr)
			if !ok {
				t.Fatalf("RemoteAddr %T %v, want *net.TCPAddr", c.RemoteAddr(), c.RemoteAddr())
			}
			want := tt.wantIP
			if want == "peer" {
				want = client.LocalAddr().(*net.TCPAddr).IP.String()
				tt.wantPort = client.LocalAddr().(*net.TCPAddr).Port
			}
			if ra.IP.String() != want || ra.Port != tt.wantPort {
				t.Errorf("RemoteAddr = %v, want %s port %d", ra, want, tt.wantPort)
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			wantData := tt.wantData
			if wantData == "" {
				wantData = payload
			}
			if string(got) != wantData {
				t.Errorf("read %q, want %q", got, wantData)
			}
		})
	}
}

// TestListenerRefused sends what a balancer must not, and checks that the
// connection is closed without reaching Accept and that the log names the
// peer and the cause.
func TestListenerRefused(t *testing.T) {
	tests := []struct {
		name    string
		send    func(t *testing.T) []byte
		timeout time.Duration
		wantLog string
	}{
		{name: "no header", send: func(*testing.T) []byte { return []byte("SSH-2.0-OpenSSH_9.2\r\n") },
			wantLog: "does not start with a PROXY protocol"},
		{name: "malformed v1", send: func(*testing.T) []byte { return []byte("PROXY TCP4 203.0.113.300 10.0.0.1 1 2\r\n") },
			wantLog: "read PROXY protocol header"},
		{name: "v1 without CRLF", send: func(*testing.T) []byte { return []byte("PROXY TCP4 203.0.113.9 10.0.0.1 1 2\n") },
			wantLog: "read PROXY protocol header"},
		{name: "truncated v2", send: func(t *testing.T) []byte { return format(t, v2("203.0.113.9:1", "10.0.0.1:2"))[:20] },
			wantLog: "read PROXY protocol header"},
		{name: "truncated v2 signature", send: func(t *testing.T) []byte { return format(t, v2("203.0.113.9:1", "10.0.0.1:2"))[:8] },
			wantLog: "does not start with a PROXY protocol"},
		{name: "v2 UDP source", send: func(t *testing.T) []byte {
			h := v2("203.0.113.9:1", "10.0.0.1:2")
			h.TransportProtocol = pp.UDPv4
			h.SourceAddr = &net.UDPAddr{IP: net.ParseIP("203.0.113.9"), Port: 1}
			h.DestinationAddr = &net.UDPAddr{IP: net.ParseIP("10.0.0.1"), Port: 2}
			return format(t, h)
		}, wantLog: "non-TCP source"},
		{name: "nothing sent", send: func(*testing.T) []byte { return nil }, wantLog: "does not start"},
		{name: "header timeout", timeout: 10 * time.Millisecond,
			send:    func(*testing.T) []byte { return []byte("PROX") },
			wantLog: "within 10ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = time.Minute
			}
			ln, logs := listen(t, timeout, loopback)
			accepted := acceptOne(ln)
			client := dial(t, ln)
			if _, err := client.Write(tt.send(t)); err != nil {
				t.Fatal(err)
			}
			if tt.timeout == 0 {
				// End of stream: the parser sees the header is all there is.
				if err := client.CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			// The gateway closes its end: the client reads EOF (or a reset).
			if _, err := io.Copy(io.Discard, client); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("read from refused connection: %v", err)
			}
			if log := logs.String(); !strings.Contains(log, "peer="+client.LocalAddr().String()) || !strings.Contains(log, tt.wantLog) {
				t.Errorf("log %q does not name the peer %s and %q", log, client.LocalAddr(), tt.wantLog)
			}
			// A good connection still gets through afterwards, and is the
			// one Accept returns.
			good := dial(t, ln)
			if _, err := good.Write([]byte("PROXY TCP4 203.0.113.10 10.0.0.1 5 6\r\n")); err != nil {
				t.Fatal(err)
			}
			c, ok := <-accepted
			if !ok {
				t.Fatal("good connection not accepted")
			}
			defer c.Close()
			if got := c.RemoteAddr().String(); got != "203.0.113.10:5" {
				t.Errorf("accepted %s, want the good connection 203.0.113.10:5", got)
			}
		})
	}
}

// TestSlowBalancerDoesNotBlockAccept holds one trusted connection without a
// header and checks that another, sent after it, is accepted.
func TestSlowBalancerDoesNotBlockAccept(t *testing.T) {
	ln, _ := listen(t, time.Hour, loopback)
	accepted := acceptOne(ln)
	slow := dial(t, ln)
	if _, err := slow.Write([]byte("PROXY TCP4")); err != nil {
		t.Fatal(err)
	}
	fast := dial(t, ln)
	if _, err := fast.Write([]byte("PROXY TCP4 203.0.113.11 10.0.0.1 7 8\r\n")); err != nil {
		t.Fatal(err)
	}
	c, ok := <-accepted
	if !ok {
		t.Fatal("not accepted")
	}
	defer c.Close()
	if got := c.RemoteAddr().String(); got != "203.0.113.11:7" {
		t.Errorf("accepted %s, want 203.0.113.11:7", got)
	}
}

// TestCloseEndsPendingHeaders closes the listener while a header is awaited
// and checks that the wait ends, Accept reports net.ErrClosed, and nothing
// is logged against the balancer.
func TestCloseEndsPendingHeaders(t *testing.T) {
	ln, logs := listen(t, time.Hour, loopback)
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	client := dial(t, ln)
	// The first 8 bytes of the 12-byte v2 signature: the parser waits for
	// the rest. (A partial v1 line is refused at once by the parser, which
	// reads v1 from what has arrived; balancers send a header in one
	// write.)
	if _, err := client.Write([]byte("\r\n\r\n\x00\r\nQ")); err != nil {
		t.Fatal(err)
	}
	// Wait until the header read is under way, so Close has it to end.
	// The deadline is a liveness guard (a test must not hang), not a
	// measurement.
	for deadline := time.Now().Add(30 * time.Second); ; {
		ln.mu.Lock()
		n := len(ln.pending)
		ln.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the header read never started (or ended early); log:\n%s", logs.String())
		}
		time.Sleep(time.Millisecond)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if _, err := io.Copy(io.Discard, client); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("pending connection: %v", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Accept after Close: %v", err)
	}
	if s := logs.String(); s != "" {
		t.Errorf("logged on Close: %s", s)
	}
}

// TestDualStackIPv4Peer checks that an IPv4 balancer seen as an
// IPv4-mapped IPv6 address still matches an IPv4 prefix.
func TestDualStackIPv4Peer(t *testing.T) {
	l := NewListener(nil, Config{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for _, tt := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3").To4(), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("11.1.2.3"), Port: 1}, false},
		{&net.UnixAddr{Name: "/x", Net: "unix"}, false},
	} {
		if got := l.isTrusted(tt.addr); got != tt.want {
			t.Errorf("isTrusted(%v) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}
