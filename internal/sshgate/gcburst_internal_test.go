package sshgate

import (
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
			b := &burstCollector{quiet: time.Hour, min: 4, gc: func(int) { gcs.Add(1) }}
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

// TestBurstCollectorTimer checks that the quiet period's timer, not only a
// direct call, ends a burst.
func TestBurstCollectorTimer(t *testing.T) {
	done := make(chan struct{})
	b := &burstCollector{quiet: time.Millisecond, min: 1, gc: func(int) { close(done) }}
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
