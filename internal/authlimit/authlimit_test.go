package authlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time for the limiter.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *clock) add(d time.Duration) { c.t.Add(int64(d)) }
func newClock() *clock               { c := &clock{}; c.t.Store(time.Unix(1_700_000_000, 0).UnixNano()); return c }
func addr(s string) netip.Addr       { return netip.MustParseAddr(s) }
func v4(i int) netip.Addr            { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
func spend(l *Limiter, a netip.Addr, n int) {
	for range n {
		l.Charge(a)
	}
}

// TestParallelAttemptsAreEachCharged: attempts running side by side must
// each see the others' charge; checked-then-charged, all of them passed.
func TestParallelAttemptsAreEachCharged(t *testing.T) {
	l := newLimiter(6, 5, 100, newClock().now)
	var wg sync.WaitGroup
	var passed atomic.Int32
	for range 50 {
		wg.Go(func() {
			if _, ok := l.Charge(addr("192.0.2.1")); ok {
				passed.Add(1)
			}
		})
	}
	wg.Wait()
	if passed.Load() != 5 {
		t.Fatalf("%d of 50 parallel attempts passed a budget of 5", passed.Load())
	}
	if !l.Spent(addr("192.0.2.1")) {
		t.Error("budget spent but Spent says no")
	}
}

func TestRefund(t *testing.T) {
	c := newClock()
	l := newLimiter(6, 3, 100, c.now)
	src := addr("192.0.2.1")
	refund, ok := l.Charge(src)
	if !ok {
		t.Fatal("first attempt refused")
	}
	refund()
	refund() // a second call gives nothing more
	spend(l, src, 3)
	if _, ok := l.Charge(src); ok {
		t.Error("a double refund bought an extra attempt")
	}
	// A token comes back every 10 s.
	c.add(10 * time.Second)
	if _, ok := l.Charge(src); !ok {
		t.Error("no attempt after the budget refilled one")
	}
	if _, ok := l.Charge(src); ok {
		t.Error("refill gave more than one attempt in 10 s")
	}
}

// TestSourceKeys: the ways to write one source share its budget; another
// source does not.
func TestSourceKeys(t *testing.T) {
	for _, tc := range []struct {
		name         string
		spent, other string
		shared       bool
	}{
		{"same IPv4", "192.0.2.1", "192.0.2.1", true},
		{"IPv4-mapped IPv6 is the IPv4 source", "192.0.2.1", "::ffff:192.0.2.1", true},
		{"another IPv4", "192.0.2.1", "192.0.2.2", false},
		{"same IPv6 /64", "2001:db8::1", "2001:db8::ffff:1", true},
		{"zone dropped", "fe80::1", "fe80::1%eth0", true},
		{"another IPv6 /64", "2001:db8::1", "2001:db8:0:1::1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(6, 2, 100, newClock().now)
			spend(l, addr(tc.spent), 2)
			if got := l.Spent(addr(tc.other)); got != tc.shared {
				t.Errorf("Spent(%s) after %s spent its budget = %v, want %v", tc.other, tc.spent, got, tc.shared)
			}
		})
	}
}

// TestFullTable: with every place taken by a source still paying,
// newcomers share the overflow budget (no fresh attempts for a flood), a
// refund goes back to the overflow budget it came from, and once the old
// sources have recovered newcomers get their own budget again, so that a
// guesser draining the overflow cannot block everyone for good.
func TestFullTable(t *testing.T) {
	c := newClock()
	const max = 50
	l := newLimiter(6, 3, max, c.now)
	for i := range max {
		spend(l, v4(i), 1)
	}
	guesser, newcomer := addr("192.0.2.1"), addr("192.0.2.2")
	refund, ok := l.Charge(guesser)
	if !ok {
		t.Fatal("overflow budget refused the first attempt")
	}
	spend(l, guesser, 2)
	if !l.Spent(newcomer) {
		t.Fatal("a newcomer got a fresh budget while the table is full")
	}
	refund()
	if _, ok := l.Charge(newcomer); !ok {
		t.Fatal("the refund did not go back to the overflow budget it was charged to")
	}
	if n := len(l.sources); n != max {
		t.Fatalf("table grew to %d past its bound %d", n, max)
	}

	c.add(time.Minute) // every old source refilled its one failure
	spend(l, guesser, 3)
	if !l.Spent(guesser) {
		t.Error("a source that spent its own budget is not blocked")
	}
	if l.Spent(newcomer) {
		t.Error("a newcomer is blocked by someone else's failures after the old sources recovered")
	}
	// A source still paying is kept through a sweep.
	c.add(2 * time.Second)
	spend(l, addr("192.0.2.3"), 1)
	if !l.Spent(guesser) {
		t.Error("a sweep forgot a source that had not recovered")
	}
}

func TestAddrOf(t *testing.T) {
	for _, tc := range []struct {
		in   net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 5}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 5}, "192.0.2.1"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5}, "2001:db8::1"},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, "invalid IP"},
		{nil, "invalid IP"},
	} {
		if got := AddrOf(tc.in).String(); got != tc.want {
			t.Errorf("AddrOf(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
