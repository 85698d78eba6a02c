// Package authlimit is the budget of failed sign-ins a source network may
// spend: a token bucket per IPv4 address or IPv6 /64 that each attempt is
// charged before its credential is checked, and that a successful attempt
// gets back. The fronts share it, so that a guesser meets the same rule
// whatever protocol it guesses through.
package authlimit

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// MaxSources bounds the table of per-source budgets. Past it, sources
// share one overflow budget (see Limiter).
const MaxSources = 10000

// Limiter holds the budgets. Each source has Burst failures, refilled at
// PerMinute. The table is bounded: a source whose budget is full again is
// the same as an unknown one and is forgotten when room is needed (at most
// one sweep a second, so that a flood of new sources does not buy a scan of
// the table each). When every place holds a source still paying for its
// failures, newcomers are charged to one shared overflow budget: a flood of
// addresses (an IPv6 /48 holds 65,536 /64s) buys no fresh attempts, at the
// price of slowing newcomers while it lasts, which fails closed. A refund
// goes to the budget that was charged, the overflow one included.
type Limiter struct {
	perSec float64
	burst  float64
	max    int
	now    func() time.Time

	mu       sync.Mutex
	sources  map[netip.Prefix]*bucket
	overflow *bucket
	swept    time.Time // when sources was last swept
}

// bucket is one budget. Guarded by Limiter.mu.
type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

// New returns a Limiter of burst failures per source, refilled at
// perMinute. Non-positive values take the defaults of the fronts: 10 a
// minute, burst 20.
func New(perMinute float64, burst int) *Limiter {
	if perMinute <= 0 {
		perMinute = 10
	}
	if burst <= 0 {
		burst = 20
	}
	return newLimiter(perMinute, burst, MaxSources, time.Now)
}

func newLimiter(perMinute float64, burst, max int, now func() time.Time) *Limiter {
	l := &Limiter{perSec: perMinute / 60, burst: float64(burst), max: max, now: now, sources: map[netip.Prefix]*bucket{}}
	l.overflow = &bucket{tokens: l.burst, at: now()}
	return l
}

// left refills b up to now and returns its tokens.
func (l *Limiter) left(b *bucket, now time.Time) float64 {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(b.tokens+d.Seconds()*l.perSec, l.burst)
		b.at = now
	}
	return b.tokens
}

// bucketLocked returns key's budget; create says to make one for a source
// not in the table (else nil is returned for it).
func (l *Limiter) bucketLocked(key netip.Prefix, now time.Time, create bool) *bucket {
	if b := l.sources[key]; b != nil {
		return b
	}
	if !create {
		return nil
	}
	if len(l.sources) >= l.max && now.Sub(l.swept) >= time.Second {
		l.swept = now
		for k, b := range l.sources {
			if l.left(b, now) >= l.burst {
				delete(l.sources, k)
			}
		}
	}
	if len(l.sources) >= l.max {
		return l.overflow
	}
	b := &bucket{tokens: l.burst, at: now}
	l.sources[key] = b
	return b
}

// Charge takes one failure from src's budget now, before the attempt's
// credential is checked, so that attempts running side by side each see
// the others' charge (checking first and charging after a failure lets a
// burst of parallel guesses all pass the check). ok is false when the
// budget is spent: refuse the attempt without checking it. refund gives
// the failure back, once; call it when the attempt succeeded.
func (l *Limiter) Charge(src netip.Addr) (refund func(), ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	key := SourcePrefix(src)
	b := l.bucketLocked(key, now, true)
	if l.left(b, now) < 1 {
		return nil, false
	}
	b.tokens--
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			// b may have been swept meanwhile (only when full
			// again): then the refund changes nothing anyone reads.
			l.left(b, l.now())
			b.tokens = min(b.tokens+1, l.burst)
		})
	}, true
}

// Spent reports whether src has no failure left to spend, without
// charging it: a front drops such a source's connections at accept.
func (l *Limiter) Spent(src netip.Addr) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(SourcePrefix(src), now, false)
	if b == nil {
		if len(l.sources) < l.max {
			return false
		}
		b = l.overflow
	}
	return l.left(b, now) < 1
}

// SourcePrefix is the key a source is counted under: the address for
// IPv4, its /64 for IPv6, since one IPv6 client usually holds a whole /64
// and could otherwise rotate through it.
func SourcePrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked()
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// AddrOf returns the IP address of a connection's remote address, IPv4
// unmapped; the zero Addr when it has none.
func AddrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
