package pgproxy

import (
	"net/netip"
	"testing"
	"time"
)

// TestFailureLimiterForgetsRecoveredSources: once the map of sources is
// full, a source that failed long ago must not push newcomers onto the
// shared budget, which anyone could drain for everyone; a source still
// paying for its failures must not be forgotten.
func TestFailureLimiterForgetsRecoveredSources(t *testing.T) {
	f := newFailureLimiter(6, 3) // a token every 10 s, burst 3
	t0 := time.Unix(1_700_000_000, 0)
	for i := range maxFailureSources {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		f.failed(src, t0)
	}
	guesser := netip.MustParseAddr("192.0.2.1")
	// The map is full: a newcomer shares one budget, which a guesser can
	// drain for everyone.
	for range 3 {
		f.failed(guesser, t0)
	}
	if !f.blocked(netip.MustParseAddr("192.0.2.2"), t0) {
		t.Fatal("with the map full and no source recovered, the shared budget should be spent")
	}

	// A minute later the old sources have refilled: newcomers get their own
	// budget again, and the guesser draining its own blocks only itself.
	t1 := t0.Add(time.Minute)
	for range 3 {
		f.failed(guesser, t1)
	}
	if !f.blocked(guesser, t1) {
		t.Error("a source that spent its budget is not blocked")
	}
	if f.blocked(netip.MustParseAddr("192.0.2.2"), t1) {
		t.Error("a new source is blocked by someone else's failures after the old sources recovered")
	}

	// A source still paying is kept through a sweep.
	t2 := t1.Add(2 * time.Second)
	f.failed(netip.MustParseAddr("192.0.2.3"), t2)
	if !f.blocked(guesser, t2) {
		t.Error("a sweep forgot a source that had not recovered")
	}
}
