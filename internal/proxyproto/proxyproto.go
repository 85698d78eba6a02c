// Package proxyproto lets the gateway's TCP listeners sit behind a load
// balancer that speaks the PROXY protocol (v1 text or v2 binary, as HAProxy,
// AWS NLB and most TCP balancers send it), so that the fronts see the
// client's address rather than the balancer's: source_cidrs, autologin and
// the audit trail all read it from the connection's RemoteAddr.
//
// The policy is strict in both directions. A connection from a configured
// load balancer must open with a valid header, or it is closed and logged:
// a balancer that forgot to send one would otherwise pass its own address
// off as the client's. A connection from anywhere else is served as is and
// a header it sends is never read, so no client can claim another's address.
//
// Parsing is done by github.com/pires/go-proxyproto; this package applies
// the policy, the header deadline and the logging around it.
package proxyproto

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultHeaderTimeout is how long a load balancer may take to send its
// header when Config.HeaderTimeout is zero. Balancers send it with the
// first segment, so a few seconds only ever cut off a stuck peer.
const DefaultHeaderTimeout = 5 * time.Second

// Config says whose PROXY headers to trust.
type Config struct {
	// Trusted are the load balancers' addresses. A connection from one of
	// them must open with a PROXY header; any other connection is served
	// as is. Empty trusts no one, which makes the Listener a pass-through.
	// IPv4 peers accepted on a dual-stack socket are matched as IPv4.
	Trusted []netip.Prefix
	// HeaderTimeout bounds the wait for a trusted peer's header. Zero
	// means DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// Log gets one warning per connection refused for a missing or bad
	// header, naming the peer. If nil, nothing is logged.
	Log *slog.Logger
}

// Listener wraps a TCP listener and applies Config to every connection it
// accepts.
//
// Headers are read in a goroutine of their own per connection, before
// Accept returns the connection: a balancer that is slow to send one holds
// up only its own connection, never the accept loop of the server, which
// may (as the SSH front does) look at RemoteAddr before handing the
// connection on. Connections whose header is ready come out of Accept
// first; the others follow as soon as they are.
type Listener struct {
	inner   net.Listener
	trusted []netip.Prefix
	timeout time.Duration
	log     *slog.Logger

	start     sync.Once
	ready     chan accepted
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	// mu guards pending and closed.
	mu sync.Mutex
	// pending holds the trusted connections whose header is being read,
	// so that Close can cut those reads short.
	pending map[net.Conn]struct{}
	closed  bool
}

// accepted is one result of the inner listener: a connection ready to be
// served, or an error to report from Accept.
type accepted struct {
	conn net.Conn
	err  error
}

// NewListener wraps inner. Nothing is accepted from inner before the first
// call to Accept, so connections wait in the kernel's backlog until the
// server is ready for them, as they would without the wrapper.
func NewListener(inner net.Listener, cfg Config) *Listener {
	timeout := cfg.HeaderTimeout
	if timeout <= 0 {
		timeout = DefaultHeaderTimeout
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{
		inner:   inner,
		trusted: cfg.Trusted,
		timeout: timeout,
		log:     log,
		ready:   make(chan accepted),
		done:    make(chan struct{}),
		pending: make(map[net.Conn]struct{}),
	}
}

// Accept returns the next connection to serve. Its RemoteAddr is the
// client's address from the PROXY header when it came through a trusted
// load balancer (the balancer's own for a v2 LOCAL or v1 UNKNOWN header,
// which balancers send for their health checks), the peer's otherwise.
// After Close it returns an error wrapping net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.run() })
	// A closed listener wins over a connection that became ready at the
	// same moment: a server that is shutting down must not get new work.
	select {
	case <-l.done:
		return nil, l.errClosed()
	default:
	}
	select {
	case a := <-l.ready:
		return a.conn, a.err
	case <-l.done:
		return nil, l.errClosed()
	}
}

// Close stops accepting, closes the inner listener and every connection
// whose header is still awaited. Connections already returned by Accept
// are the server's and stay open.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		pending := l.pending
		l.pending = nil
		l.mu.Unlock()
		// done first: a header read cut short below must see that the
		// listener closed, and not blame the balancer in the log.
		close(l.done)
		for c := range pending {
			c.Close()
		}
		l.closeErr = l.inner.Close()
	})
	return l.closeErr
}

// Addr returns the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

func (l *Listener) errClosed() error {
	return &net.OpError{Op: "accept", Net: l.inner.Addr().Network(), Addr: l.inner.Addr(), Err: net.ErrClosed}
}

// run accepts from the inner listener until it is closed.
func (l *Listener) run() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				// Closed under us (or by Close): make Accept report it
				// from now on rather than block for ever.
				l.Close()
				return
			}
			// Out of file descriptors and the like: the server decides
			// whether to back off or stop. Handing the error over
			// synchronously keeps this loop at the server's pace.
			if !l.deliver(accepted{err: err}) {
				return
			}
			continue
		}
		if !l.isTrusted(c.RemoteAddr()) {
			// Not a load balancer: no header is read, so a header this
			// peer sends reaches the SSH or TLS handshake as bytes and
			// fails it there.
			if !l.deliver(accepted{conn: c}) {
				c.Close()
				return
			}
			continue
		}
		if !l.track(c) {
			c.Close()
			return
		}
		go l.handshake(c)
	}
}

// handshake reads a trusted peer's header and hands the connection on, or
// closes it.
func (l *Listener) handshake(raw net.Conn) {
	c, err := readHeader(raw, l.timeout)
	l.untrack(raw)
	if err != nil {
		select {
		case <-l.done:
			// Cut short by Close: not the balancer's fault.
		default:
			l.log.Warn("connection from a load balancer closed: no valid PROXY protocol header; check that the balancer sends one (proxy_protocol_from)",
				"peer", raw.RemoteAddr().String(), "err", err)
		}
		raw.Close()
		return
	}
	if !l.deliver(accepted{conn: c}) {
		raw.Close()
	}
}

// deliver hands a to Accept; false if the listener was closed first.
func (l *Listener) deliver(a accepted) bool {
	select {
	case l.ready <- a:
		return true
	case <-l.done:
		return false
	}
}

func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.pending[c] = struct{}{}
	return true
}

func (l *Listener) untrack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pending, c)
}

// isTrusted reports whether a peer is a configured load balancer.
func (l *Listener) isTrusted(a net.Addr) bool {
	ip := addrIP(a)
	if !ip.IsValid() {
		return false
	}
	for _, p := range l.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// addrIP returns a TCP address's IP, with an IPv4-mapped IPv6 address (an
// IPv4 peer on a dual-stack socket) unmapped so that IPv4 prefixes match it.
func addrIP(a net.Addr) netip.Addr {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Addr{}
	}
	return ip.Unmap()
}
