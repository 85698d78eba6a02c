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
	// shared is the budget of every source past maxFailureSources, so
	// that a flood of addresses (an IPv6 /48 holds 65,536 /64s) buys no
	// fresh attempts and forgets no one's failures.
	shared *rate.Limiter
	// swept is when full budgets were last removed from sources.
	swept time.Time
}

// maxFailureSources bounds the map of per-source budgets.
const maxFailureSources = 10000

func newFailureLimiter(perMinute float64, burst int) *failureLimiter {
	return &failureLimiter{perMinute: perMinute, burst: burst, sources: map[netip.Addr]*rate.Limiter{},
		shared: rate.NewLimiter(rate.Limit(perMinute/60), burst)}
}

func (f *failureLimiter) limiter(src netip.Addr, now time.Time) *rate.Limiter {
	key := sourceKey(src)
	l := f.sources[key]
	if l == nil {
		if len(f.sources) >= maxFailureSources {
			f.sweep(now)
		}
		if len(f.sources) >= maxFailureSources {
			return f.shared
		}
		l = rate.NewLimiter(rate.Limit(f.perMinute/60), f.burst)
		f.sources[key] = l
	}
	return l
}

// sweep forgets sources whose budget has refilled (they are as a new
// source would be), at most once a second: without it, 10,000 sources
// that ever failed once would put every later source on the shared budget
// for good, where anyone could spend it for everyone.
func (f *failureLimiter) sweep(now time.Time) {
	if now.Sub(f.swept) < time.Second {
		return
	}
	f.swept = now
	for k, l := range f.sources {
		if l.TokensAt(now) >= float64(f.burst) {
			delete(f.sources, k)
		}
	}
}

// blocked reports whether src has no failures left to spend.
func (f *failureLimiter) blocked(src netip.Addr, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limiter(src, now).TokensAt(now) < 1
}

// failed charges one failure to src.
func (f *failureLimiter) failed(src netip.Addr, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limiter(src, now).AllowN(now, 1)
}
