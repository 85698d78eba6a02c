package sshgate

import (
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/internal/authlimit"
)

// Progress of a connection that has not authenticated yet, for choosing
// which one makes room when the pool is full: a connection that has not
// even sent its version string costs the least to drop.
const (
	progressSilent  int32 = iota // accepted, nothing read yet
	progressSpoke                // the client sent bytes (version, key exchange)
	progressAuthing              // the client asked to authenticate
)

// preAuthPool counts the connections that have not authenticated yet, in
// total and per source, so that no single source can fill the pool and a
// flood of idle connections cannot keep others out.
//
// Each source also has a pressure: how often it connected lately (a count
// that halves every pressureHalfLife). A person logging in now and then has
// a pressure near one; a source reopening idle connections as fast as they
// are closed has one in the hundreds.
//
// A new connection from source S, which already holds n of them, while the
// pool holds total:
//   - n >= perSource: refused (the per-source cap; IPv6 sources count by /64).
//   - n > 0 and total >= start: refused at random, with a probability that
//     rises from rate% at start to 100% at full (OpenSSH's MaxStartups
//     start:rate:full). A source's first connection is never dropped early,
//     so a client with nothing pending is not penalised for others' flood.
//   - total >= full: it takes the place of a connection from a source that
//     holds more than n and is under at least as much pressure as S:
//     one that made the least progress, then from the source under the
//     most pressure, holding the most, the oldest; that one is closed. If
//     there is none, it is refused.
//
// What this cannot promise: an attacker with many addresses, each
// connecting as rarely as a person does, competes with that person on
// equal terms. That is said in README.md.
type preAuthPool struct {
	perSource         int
	start, rate, full int
	// intn returns a number in [0, n); rand.IntN unless a test sets it.
	intn func(n int) int
	now  func() time.Time

	mu      sync.Mutex
	sources map[netip.Prefix]*sourceState
	entries map[*preAuthEntry]struct{}
	seq     uint64    // admission order, for "oldest"
	swept   time.Time // last sweep of a full sources table
}

// sourceState is what the pool knows of one source.
type sourceState struct {
	pending  int       // connections in the pool
	pressure float64   // connections lately, halving every pressureHalfLife
	at       time.Time // when pressure was brought up to date
}

const (
	pressureHalfLife = 10 * time.Second
	// maxSources bounds the table of sources; sources with nothing pending
	// and little pressure are forgotten first.
	maxSources = 1 << 16
)

// preAuthEntry is one connection in the pool.
type preAuthEntry struct {
	key      netip.Prefix
	src      *sourceState
	seq      uint64
	nc       net.Conn
	progress atomic.Int32
	gone     bool // released or evicted; guarded by preAuthPool.mu
}

func newPreAuthPool(perSource, start, rate, full int) *preAuthPool {
	return &preAuthPool{perSource: perSource, start: start, rate: rate, full: full, intn: rand.IntN, now: time.Now,
		sources: map[netip.Prefix]*sourceState{}, entries: map[*preAuthEntry]struct{}{}}
}

// Reasons admit gives for a refusal, for the log.
const (
	dropPerSource = "too many unauthenticated connections from this source"
	dropEarly     = "unauthenticated connections over the start threshold (random early drop)"
	dropFull      = "unauthenticated connection pool full"
)

// decayed returns st's pressure at now.
func (st *sourceState) decayed(now time.Time) float64 {
	if d := now.Sub(st.at); d > 0 {
		st.pressure *= math.Exp2(-float64(d) / float64(pressureHalfLife))
		st.at = now
	}
	return st.pressure
}

// sourceLocked returns key's state, creating it; under a flood of distinct
// sources that fills the table, a new one gets a state that is not kept
// (it starts with no history, like any new source).
func (p *preAuthPool) sourceLocked(key netip.Prefix, now time.Time) *sourceState {
	if st := p.sources[key]; st != nil {
		return st
	}
	// A full table is swept at most once a second: a flood of new
	// sources must not buy a scan of the whole table each.
	if len(p.sources) >= maxSources && now.Sub(p.swept) >= time.Second {
		p.swept = now
		for k, st := range p.sources {
			if st.pending == 0 && st.decayed(now) < 1 {
				delete(p.sources, k)
			}
		}
	}
	st := &sourceState{at: now}
	if len(p.sources) < maxSources {
		p.sources[key] = st
	}
	return st
}

// admit takes a place for nc from src. It returns the entry to release when
// the connection authenticates or ends, or nil and a reason. evicted, when
// not nil, is a connection that lost its place to this one: the caller
// closes it (outside the pool's lock).
func (p *preAuthPool) admit(nc net.Conn, src netip.Addr) (e *preAuthEntry, evicted net.Conn, reason string) {
	key := authlimit.SourcePrefix(src)
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.sourceLocked(key, now)
	pressure := st.decayed(now) + 1
	st.pressure = pressure
	n, total := st.pending, len(p.entries)
	if n >= p.perSource {
		return nil, nil, dropPerSource
	}
	if n > 0 && total >= p.start {
		chance := 100
		if total < p.full && p.full > p.start {
			chance = p.rate + (100-p.rate)*(total-p.start)/(p.full-p.start)
		}
		if p.intn(100) < chance {
			return nil, nil, dropEarly
		}
	}
	if total >= p.full {
		victim := p.victimLocked(n, pressure, now)
		if victim == nil {
			return nil, nil, dropFull
		}
		p.removeLocked(victim)
		evicted = victim.nc
	}
	p.seq++
	e = &preAuthEntry{key: key, src: st, seq: p.seq, nc: nc}
	p.entries[e] = struct{}{}
	st.pending++
	return e, evicted, ""
}

// victimLocked picks the connection to close for a newcomer whose source
// holds n and is under pressure: among those of sources holding more than
// n and under at least as much pressure, the least progress first, then
// the most pressure, then the source holding the most, then the oldest.
func (p *preAuthPool) victimLocked(n int, pressure float64, now time.Time) *preAuthEntry {
	var best *preAuthEntry
	var bestProg int32
	var bestPressure float64
	for e := range p.entries {
		if e.src.pending <= n {
			continue
		}
		pr := e.src.decayed(now)
		if pr < pressure {
			continue
		}
		prog := e.progress.Load()
		if best == nil || prog < bestProg ||
			(prog == bestProg && (pr > bestPressure ||
				(pr == bestPressure && (e.src.pending > best.src.pending ||
					(e.src.pending == best.src.pending && e.seq < best.seq))))) {
			best, bestProg, bestPressure = e, prog, pr
		}
	}
	return best
}

func (p *preAuthPool) removeLocked(e *preAuthEntry) {
	if e.gone {
		return
	}
	e.gone = true
	delete(p.entries, e)
	e.src.pending--
}

// release gives e's place back; releasing twice, or after an eviction, is
// a no-op.
func (p *preAuthPool) release(e *preAuthEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removeLocked(e)
}

// pending returns how many connections hold a place.
func (p *preAuthPool) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// advance records that e's connection got at least as far as prog.
func (e *preAuthEntry) advance(prog int32) {
	for {
		cur := e.progress.Load()
		if cur >= prog || e.progress.CompareAndSwap(cur, prog) {
			return
		}
	}
}

// progressConn marks its entry progressSpoke at the first bytes read. After
// that a read costs one atomic load.
type progressConn struct {
	net.Conn
	e *preAuthEntry
}

func (c *progressConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.e.progress.Load() == progressSilent {
		c.e.advance(progressSpoke)
	}
	return n, err
}
