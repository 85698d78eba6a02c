package web

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Login attempts allowed per source network, per user name and per (user
// name, source network): loginBurst at once, then one every loginEvery. A
// successful login gives its attempt back, so only failures use the
// budget. A source or a (user, source) pair out of attempts is refused; a
// user name out of attempts is only slowed, by up to loginSlowMax per
// attempt, so that a stranger cannot lock its owner out.
const (
	loginBurst   = 5
	loginEvery   = 10 * time.Second
	loginSlowMax = 3 * time.Second
	// maxLimiterKeys bounds each table of limiters. An entry with a full
	// budget is the same as no entry, so a full table first drops those.
	maxLimiterKeys = 10000
)

// limiter counts login attempts per key (a source network or a user name).
// Its table is bounded: when every slot holds a key that is still being
// limited, new keys share one overflow budget. That keeps memory bounded
// under a flood of distinct keys without handing the flood fresh budgets
// (failing closed: during such a flood, logins from new keys are slow for
// everyone, which is the price of not being guessable).
type limiter struct {
	every time.Duration
	burst int
	max   int

	mu       sync.Mutex
	keys     map[string]*rate.Limiter
	overflow *rate.Limiter
}

func newLimiter(every time.Duration, burst, max int) *limiter {
	return &limiter{
		every:    every,
		burst:    burst,
		max:      max,
		keys:     make(map[string]*rate.Limiter),
		overflow: rate.NewLimiter(rate.Every(every), burst),
	}
}

// attempt takes one attempt for key at now. When key has one left it
// returns refund, which gives it back (call it when the attempt succeeded);
// otherwise refund is nil and wait is how long until the next attempt.
func (l *limiter) attempt(key string, now time.Time) (refund func(), wait time.Duration) {
	lim := l.lookup(key, now)
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return nil, d
	}
	return func() { res.CancelAt(now) }, 0
}

// exhausted reports whether key has no attempt left at now: the attempt
// just made used the last one.
func (l *limiter) exhausted(key string, now time.Time) bool {
	return l.lookup(key, now).TokensAt(now) < 1
}

// lookup returns key's limiter, creating it.
func (l *limiter) lookup(key string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim, ok := l.keys[key]; ok {
		return lim
	}
	if len(l.keys) >= l.max {
		l.sweepLocked(now)
		if len(l.keys) >= l.max {
			return l.overflow
		}
	}
	lim := rate.NewLimiter(rate.Every(l.every), l.burst)
	l.keys[key] = lim
	return lim
}

// sweep drops the keys whose budget is full again: they carry no state.
func (l *limiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
}

func (l *limiter) sweepLocked(now time.Time) {
	for k, lim := range l.keys {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.keys, k)
		}
	}
}

// userSourceKey is the key of a (user name, source network) pair.
func userSourceKey(user, source string) string { return user + "\x00" + source }

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// sourceKey is the rate-limit key of a client address (host:port): the
// address itself for IPv4, its /64 for IPv6, since one IPv6 client
// usually holds a whole /64 and could otherwise rotate through it.
func sourceKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr.String()
	}
	return netip.PrefixFrom(addr, 64).Masked().String()
}
