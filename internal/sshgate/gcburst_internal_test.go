package sshgate

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// TestBurstCollector checks when a burst of logins is collected: only a
// burst of at least min logins, once, and counting starts again after
// it. quietFor is called by hand (as the timer would) so that the test
// does not depend on timing.
func TestBurstCollector(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bursts []int // logins per burst, each followed by the quiet period
		want   int32 // collections
	}{
		{"no logins", []int{0}, 0},
		{"a trickle", []int{1, 1, 1, 1, 1, 1, 1, 1}, 0},
		{"one below the minimum", []int{3}, 0},
		{"the minimum", []int{4}, 1},
		{"a large burst, once", []int{50}, 1},
		{"two bursts", []int{4, 2, 9}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gcs atomic.Int32
			b := &burstCollector{quiet: time.Hour, min: 4, gc: func(int) { gcs.Add(1) }, now: time.Now}
			defer b.stop()
			for _, n := range tc.bursts {
				for range n {
					b.login()
				}
				b.quietFor()
			}
			if got := gcs.Load(); got != tc.want {
				t.Errorf("collections = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestBurstCollectorSpacing checks that bursts ending less than every
// after a collection are collected once every has passed, with the logins
// of both, so that logging in again and again cannot make the gateway
// collect back to back.
func TestBurstCollectorSpacing(t *testing.T) {
	clock := time.Unix(1000, 0)
	var got []int
	b := &burstCollector{quiet: time.Hour, min: 4, every: 10 * time.Second,
		gc: func(n int) { got = append(got, n) }, now: func() time.Time { return clock }}
	defer b.stop()
	burst := func(n int) {
		for range n {
			b.login()
		}
		b.quietFor()
	}
	burst(5) // collected
	clock = clock.Add(time.Second)
	burst(6) // too soon: waits
	clock = clock.Add(time.Second)
	burst(2) // still too soon; joins the waiting burst
	clock = clock.Add(8 * time.Second)
	b.quietFor() // the timer, once every has passed
	if want := []int{5, 8}; !slices.Equal(got, want) {
		t.Errorf("collections of %v logins, want %v", got, want)
	}
}

// TestBurstCollectorTimer checks that the quiet period's timer, not only a
// direct call, ends a burst.
func TestBurstCollectorTimer(t *testing.T) {
	done := make(chan struct{})
	b := &burstCollector{quiet: time.Millisecond, min: 1, gc: func(int) { close(done) }, now: time.Now}
	defer b.stop()
	b.login()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("no collection after the burst")
	}
}

// TestBurstCollectorNil checks that a server without one (built by hand in
// tests) counts nothing and does not panic.
func TestBurstCollectorNil(t *testing.T) {
	var b *burstCollector
	b.login()
	b.stop()
}
