package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestStoreHealthObserve: one check that runs out of time does not refuse
// logins, two in a row do; any other error does at once; one answer
// brings the store back and resets the count.
func TestStoreHealthObserve(t *testing.T) {
	slow := fmt.Errorf("read revision: %w", context.DeadlineExceeded)
	broken := errors.New("dial tcp 127.0.0.1:5432: connection refused")
	type step struct {
		err         error
		changed     bool
		down        bool
		unavailable bool
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"one slow check is tolerated", []step{
			{nil, false, false, false},
			{slow, false, false, false},
			{nil, false, false, false},
			{slow, false, false, false},
		}},
		{"two slow checks in a row are down", []step{
			{slow, false, false, false},
			{slow, true, true, true},
			{slow, false, true, true},
			{nil, true, false, false},
		}},
		{"an answer resets the count", []step{
			{slow, false, false, false},
			{nil, false, false, false},
			{slow, false, false, false},
		}},
		{"other errors count at once", []step{
			{broken, true, true, true},
			{broken, false, true, true},
			{nil, true, false, false},
		}},
		{"a slow check while down keeps it down", []step{
			{broken, true, true, true},
			{slow, false, true, true},
			{nil, true, false, false},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h storeHealth
			for i, s := range tc.steps {
				changed, down := h.observe(s.err)
				if changed != s.changed || down != s.down {
					t.Fatalf("step %d (%v): changed %v down %v, want %v %v", i, s.err, changed, down, s.changed, s.down)
				}
				if got := h.Available() != nil; got != s.unavailable {
					t.Fatalf("step %d (%v): Available refuses %v, want %v", i, s.err, got, s.unavailable)
				}
			}
		})
	}
}
