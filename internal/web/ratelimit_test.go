package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(10*time.Second, 2, 2)
	fail := func(key string, at time.Time) time.Duration {
		t.Helper()
		refund, wait := l.attempt(key, at)
		if refund == nil && wait <= 0 {
			t.Fatalf("%s: no refund and no wait", key)
		}
		return wait
	}
	// a: two attempts, then a wait of 10 s, then one more.
	for i := range 2 {
		if w := fail("a", t0); w != 0 {
			t.Fatalf("a attempt %d: wait %v", i+1, w)
		}
	}
	if !l.exhausted("a", t0) {
		t.Error("a not exhausted after its burst")
	}
	if w := fail("a", t0); w != 10*time.Second {
		t.Fatalf("a third attempt: wait %v, want 10s", w)
	}
	if w := fail("a", t0.Add(10*time.Second)); w != 0 {
		t.Fatalf("a after 10 s: wait %v", w)
	}
	// A refunded attempt costs nothing.
	for range 5 {
		refund, wait := l.attempt("b", t0)
		if refund == nil {
			t.Fatalf("b: wait %v", wait)
		}
		refund()
	}
	if l.exhausted("b", t0) {
		t.Error("b exhausted by refunded attempts")
	}

	// The table holds 2 keys: a (limited) and b (idle). A third key
	// sweeps b away and takes its slot.
	fail("c", t0)
	if _, ok := l.keys["b"]; ok || len(l.keys) != 2 {
		t.Fatalf("keys after c: %v", l.keys)
	}
	// With a and c both limited, new keys share the overflow budget:
	// two attempts between all of them, not two each.
	fail("c", t0)
	fail("d", t0.Add(10*time.Second))
	fail("e", t0.Add(10*time.Second))
	if w := fail("f", t0.Add(10*time.Second)); w == 0 {
		t.Error("overflow keys got a budget each")
	}
	if len(l.keys) != 2 {
		t.Errorf("table grew to %d keys", len(l.keys))
	}
	// Once everyone has refilled, a sweep empties the table.
	l.sweep(t0.Add(time.Minute))
	if len(l.keys) != 0 {
		t.Errorf("keys after sweep: %v", l.keys)
	}
}

func TestSourceKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ addr, want string }{
		{"192.0.2.7:5555", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:5555", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:22", "fe80::/64"},
		{"not an address", "not an address"},
	}
	for _, tt := range tests {
		if got := sourceKey(tt.addr); got != tt.want {
			t.Errorf("sourceKey(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	a, err := newToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newToken()
	if a == b || !wellFormed(a) || len(a) != 43 {
		t.Fatalf("tokens %q %q", a, b)
	}
	tests := []struct {
		s    string
		want bool
	}{
		{a, true},
		{a[:42], false},
		{a + "A", false},
		{a[:42] + "=", false},
		{a[:42] + "+", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := wellFormed(tt.s); got != tt.want {
			t.Errorf("wellFormed(%q) = %v", tt.s, got)
		}
	}
	if tokensEqual("", "") || !tokensEqual(a, a) || tokensEqual(a, b) {
		t.Error("tokensEqual")
	}
}

func TestCrossSite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		site, origin string
		want         bool
	}{
		{"", "", false},
		{"same-origin", "", false},
		{"none", "", false},
		{"same-site", "", true},
		{"cross-site", "", true},
		{"", "https://gw.example:8443", false},
		{"", "https://evil.example", true},
		{"", "null", true},
		{"same-origin", "https://evil.example", false}, // Sec-Fetch-Site is the browser's own word
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "https://gw.example:8443/api/v1/x", nil)
		if tt.site != "" {
			r.Header.Set("Sec-Fetch-Site", tt.site)
		}
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if got := crossSite(r); got != tt.want {
			t.Errorf("Sec-Fetch-Site %q Origin %q: crossSite %v, want %v", tt.site, tt.origin, got, tt.want)
		}
	}
}
