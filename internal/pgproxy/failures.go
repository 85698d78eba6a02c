package pgproxy

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failureLimiter rate limits failed sign-ins per source address (one /64
// for IPv6): each failure takes a token, and a source without tokens is
// refused before its password is checked, so that guessing costs the
// guesser time and the gateway no argon2id work.
type failureLimiter struct {
	perMinute float64
	burst     int

	mu      sync.Mutex
	sources map[netip.Addr]*rate.Limiter
}

// maxFailureSources bounds the map: at the bound it starts over, which
// forgets old failures rather than growing without end.
const maxFailureSources = 10000

func newFailureLimiter(perMinute float64, burst int) *failureLimiter {
	return &failureLimiter{perMinute: perMinute, burst: burst, sources: map[netip.Addr]*rate.Limiter{}}
}

func (f *failureLimiter) limiter(src netip.Addr) *rate.Limiter {
	key := sourceKey(src)
	l := f.sources[key]
	if l == nil {
		if len(f.sources) >= maxFailureSources {
			clear(f.sources)
		}
		l = rate.NewLimiter(rate.Limit(f.perMinute/60), f.burst)
		f.sources[key] = l
	}
	return l
}

// blocked reports whether src has no failures left to spend.
func (f *failureLimiter) blocked(src netip.Addr, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limiter(src).TokensAt(now) < 1
}

// failed charges one failure to src.
func (f *failureLimiter) failed(src netip.Addr, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limiter(src).AllowN(now, 1)
}
