package sshgate

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/authlimit"
	"github.com/portcullis/portcullis/internal/fdlimit"
)

// fakeConn is a net.Conn that has an address and only remembers being
// closed.
type fakeConn struct {
	net.Conn
	name   string
	addr   net.Addr
	closed bool
}

func (c *fakeConn) Close() error         { c.closed = true; return nil }
func (c *fakeConn) RemoteAddr() net.Addr { return c.addr }

func TestPreAuthPool(t *testing.T) {
	type step struct {
		src      string
		progress int32 // set on the admitted entry
		want     string
		evicts   string // name of the connection closed to make room
	}
	a, b, c, legit := "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.9.9.9"
	fill := func(src string, n int, prog int32) []step {
		out := make([]step, n)
		for i := range out {
			out[i] = step{src: src, progress: prog}
		}
		return out
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name                   string
		perSource, start, full int
		rate                   int
		roll                   int // what the random draw returns
		steps                  []step
		wantPending            int
	}{
		{name: "per-source cap", perSource: 3, start: 100, rate: 30, full: 100,
			steps:       cat(fill(a, 3, 0), []step{{src: a, want: dropPerSource}, {src: b}}),
			wantPending: 4},
		{name: "IPv6 counts by /64", perSource: 2, start: 100, rate: 30, full: 100,
			steps: []step{{src: "2001:db8::1"}, {src: "2001:db8::ffff:1"}, {src: "2001:db8:0:0:1::9", want: dropPerSource},
				{src: "2001:db8:0:1::1"}},
			wantPending: 3},
		{name: "IPv4-mapped counts as IPv4", perSource: 1, start: 100, rate: 30, full: 100,
			steps:       []step{{src: "10.0.0.1"}, {src: "::ffff:10.0.0.1", want: dropPerSource}},
			wantPending: 1},
		{name: "early drop above start for a source holding one", perSource: 10, start: 2, rate: 30, full: 10, roll: 29,
			steps:       []step{{src: a}, {src: b}, {src: a, want: dropEarly}},
			wantPending: 2},
		{name: "early drop is random: a high roll passes", perSource: 10, start: 2, rate: 30, full: 10, roll: 99,
			steps:       []step{{src: a}, {src: b}, {src: a}},
			wantPending: 3},
		{name: "a source's first connection is never dropped early", perSource: 10, start: 1, rate: 100, full: 10,
			steps:       []step{{src: a}, {src: b}, {src: c}},
			wantPending: 3},
		{name: "full: a newcomer takes a silent place of the largest source", perSource: 10, start: 4, rate: 30, full: 4,
			steps:       cat(fill(a, 3, progressSilent), fill(b, 1, progressSilent), []step{{src: legit, evicts: "0"}}),
			wantPending: 4},
		{name: "full: a connection that spoke outlasts silent ones", perSource: 10, start: 3, rate: 30, full: 3,
			steps:       []step{{src: a, progress: progressAuthing}, {src: a, progress: progressSpoke}, {src: b}, {src: c, evicts: "2"}},
			wantPending: 3},
		{name: "full: the oldest of equals goes", perSource: 10, start: 2, rate: 30, full: 2,
			steps:       []step{{src: a}, {src: b}, {src: c, evicts: "0"}},
			wantPending: 2},
		{name: "full: a source holding as many as the rest gets no place", perSource: 10, start: 2, rate: 100, full: 2, roll: 99,
			steps:       []step{{src: a}, {src: b}, {src: a, want: dropEarly}},
			wantPending: 2},
		{name: "full: no one holds more than the newcomer", perSource: 10, start: 2, rate: 30, full: 2, roll: 0,
			steps:       []step{{src: a}, {src: b}, {src: a, want: dropEarly}},
			wantPending: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPreAuthPool(tt.perSource, tt.start, tt.rate, tt.full)
			p.intn = func(int) int { return tt.roll }
			p.now = func() time.Time { return testNow }
			for i, st := range tt.steps {
				nc := &fakeConn{name: fmt.Sprint(i)}
				e, evicted, reason := p.admit(nc, netip.MustParseAddr(st.src))
				if reason != st.want {
					t.Fatalf("step %d (%s): reason %q, want %q", i, st.src, reason, st.want)
				}
				if e != nil {
					e.advance(st.progress)
				}
				got := ""
				if evicted != nil {
					got = evicted.(*fakeConn).name
				}
				if got != st.evicts {
					t.Fatalf("step %d (%s): evicted %q, want %q", i, st.src, got, st.evicts)
				}
			}
			if n := p.pending(); n != tt.wantPending {
				t.Fatalf("pending %d, want %d", n, tt.wantPending)
			}
		})
	}
}

func TestPreAuthPoolRelease(t *testing.T) {
	p := newPreAuthPool(1, 1, 30, 1)
	p.now = func() time.Time { return testNow }
	a := netip.MustParseAddr("192.0.2.1")
	e1, _, _ := p.admit(&fakeConn{}, a)
	// Another source takes e1's place; e1's own release later must not
	// free a place it no longer holds.
	e2, evicted, _ := p.admit(&fakeConn{}, netip.MustParseAddr("192.0.2.2"))
	if e2 == nil || evicted == nil {
		t.Fatal("newcomer did not take the silent place")
	}
	p.release(e1)
	p.release(e1)
	if n := p.pending(); n != 1 {
		t.Fatalf("pending %d after releasing an evicted entry, want 1", n)
	}
	p.release(e2)
	if n := p.pending(); n != 0 {
		t.Fatalf("pending %d, want 0", n)
	}
	if e, _, r := p.admit(&fakeConn{}, a); e == nil {
		t.Fatalf("source refused after its places were released: %s", r)
	}
}

// TestFailureBudget: failures are charged per IPv4 address or IPv6 /64,
// and a refund (a login after them) gives them back.
func TestFailureBudget(t *testing.T) {
	cfg := Config{FailuresPerMinute: 1, FailureBurst: 2, Log: slog.New(slog.DiscardHandler), Files: &fdlimit.Budget{}}
	s := &Server{cfg: cfg, failures: authlimit.New(cfg.FailuresPerMinute, cfg.FailureBurst), preAuth: newPreAuthPool(10, 10, 30, 100),
		drops: newDropLog(cfg.Log, nil, time.Minute)}
	defer s.drops.stop()
	from := func(a string) *fakeConn {
		return &fakeConn{addr: &net.TCPAddr{IP: net.ParseIP(a), Port: 1}}
	}
	admitted := func(a string) bool {
		e, ok := s.admit(from(a))
		if ok {
			s.preAuth.release(e)
		}
		return ok
	}
	r1 := s.noteFailure(netip.MustParseAddr("2001:db8::1"))
	r2 := s.noteFailure(netip.MustParseAddr("2001:db8::2"))
	if r1 == nil || r2 == nil {
		t.Fatal("failures within the burst not charged")
	}
	if admitted("2001:db8::3") {
		t.Fatal("another address of the same /64 admitted after the /64 used its failures")
	}
	if !admitted("2001:db8:0:1::1") || !admitted("192.0.2.1") {
		t.Fatal("other sources refused")
	}
	if s.noteFailure(netip.MustParseAddr("2001:db8::4")) != nil {
		t.Fatal("a failure past the burst was charged (and could be refunded)")
	}
	r2()
	if !admitted("2001:db8::3") {
		t.Fatal("refunded failure not given back")
	}
}

var testNow = time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)

// TestPreAuthPoolPressure: a source that connects again and again loses
// its places to one that connects rarely, and cannot take theirs.
func TestPreAuthPoolPressure(t *testing.T) {
	p := newPreAuthPool(10, 2, 30, 4)
	p.intn = func(int) int { return 99 } // early drops only at 100%
	now := testNow
	p.now = func() time.Time { return now }
	flood := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}
	person := netip.MustParseAddr("198.51.100.7")
	// The flood has reopened its connections many times lately.
	for i := range 100 {
		e, _, _ := p.admit(&fakeConn{}, flood[i%2])
		if e != nil {
			p.release(e)
		}
	}
	var held []*preAuthEntry
	for i := range 4 {
		e, _, r := p.admit(&fakeConn{}, flood[i%2])
		if e == nil && i < 2 {
			t.Fatalf("flood connection %d refused: %s", i, r)
		}
		held = append(held, e)
	}
	now = now.Add(time.Second)
	// The person's first connection takes a flood connection's place even
	// though each flood source holds no more than one more than it.
	e, evicted, r := p.admit(&fakeConn{name: "person"}, person)
	if e == nil || evicted == nil {
		t.Fatalf("person refused (%s) or took no place", r)
	}
	// It stays while the flood goes on: the flood's newcomers, each from a
	// source with nothing pending, take each other's places, never its.
	for i := range 200 {
		now = now.Add(10 * time.Millisecond)
		for _, h := range held {
			if h != nil {
				p.release(h)
			}
		}
		held = held[:0]
		src := netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 50)})
		for range 3 {
			ne, ev, _ := p.admit(&fakeConn{}, src)
			held = append(held, ne)
			if ev != nil && ev.(*fakeConn).name == "person" {
				t.Fatalf("round %d: the person's connection was evicted by %s", i, src)
			}
		}
	}
	if e.gone {
		t.Fatal("the person's connection lost its place")
	}
}

func TestTemporaryAcceptError(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}, true},
		{syscall.ENFILE, true},
		{fmt.Errorf("wrapped: %w", syscall.ECONNABORTED), true},
		{net.ErrClosed, false},
		{errors.New("something else"), false},
	}
	for _, tt := range tests {
		if got := temporaryAcceptError(tt.err); got != tt.want {
			t.Errorf("temporaryAcceptError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
