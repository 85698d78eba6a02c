package sshgate

import (
	"testing"
	"time"
)

// TestAheadBudget checks the per-target budget of connections made ahead:
// a burst, then one per refill period; a connection a request logged in
// gives its place back, one thrown away does not; targets do not share.
func TestAheadBudget(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	type step struct {
		target  string
		advance time.Duration // before the step
		use     bool          // give the place back after taking it
		want    bool
	}
	burst := func(target string, n int, want bool) []step {
		out := make([]step, n)
		for i := range out {
			out[i] = step{target: target, want: want}
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
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a burst, then none", cat(burst("web1", aheadBurst, true), burst("web1", 2, false))},
		{"one per refill period", cat(burst("web1", aheadBurst, true),
			[]step{{target: "web1", advance: aheadRefill / 2, want: false}, {target: "web1", advance: aheadRefill / 2, want: true},
				{target: "web1", want: false}})},
		{"used connections give their place back", cat(
			[]step{{target: "web1", use: true, want: true}}, burst("web1", aheadBurst, true), burst("web1", 1, false))},
		{"targets do not share a budget", cat(burst("web1", aheadBurst, true), burst("web2", aheadBurst, true),
			burst("web1", 1, false))},
		{"the budget does not grow past the burst", cat([]step{{target: "web1", advance: 100 * aheadRefill, want: true}},
			burst("web1", aheadBurst-1, true), burst("web1", 1, false))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := now
			b := &aheadBudget{now: func() time.Time { return clock }}
			for i, st := range tc.steps {
				clock = clock.Add(st.advance)
				got := b.take(st.target)
				if got != st.want {
					t.Fatalf("step %d (%s): take = %v, want %v", i, st.target, got, st.want)
				}
				if got && st.use {
					b.giveBack(st.target)
				}
			}
		})
	}
}
