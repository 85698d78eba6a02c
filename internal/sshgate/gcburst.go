package sshgate

import (
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// A burstCollector collects the garbage a burst of logins leaves and
// returns its pages to the system (debug.FreeOSMemory) once the burst is
// over: at least burstMinLogins connections logged in, each less than
// burstQuiet after the one before, and then none for burstQuiet.
//
// Why: a login allocates about 170 KiB (key exchange, signatures, policy,
// the audit write), several times what the idle connection then holds
// (~25 KiB of heap and ~23 KiB of stack). Under Go's default GOGC the heap
// grows to about twice what is live before a collection, and pages freed
// stay resident until the runtime's scavenger returns them, which it does
// only above the heap goal: right after a burst of logins the gateway
// held that garbage, and an idle gateway may not collect for minutes. 200
// idle sessions measured 56-70 KiB of resident memory each right after
// they opened (bench TestHotPath, issue 13), 120-160 KiB in earlier runs.
// A collection without the release was not enough: whether the scavenger
// returned the pages within seconds depended on where the heap goal
// stood.
//
// Cost: one collection per burst, its mark work proportional to the live
// heap, and the release (madvise) of the free pages, which the next
// burst faults in again; a few milliseconds to a few tens of CPU on a
// gateway of 20-40 MB (measured by bench TestHotPath, logged at debug
// level with the time it took). It runs from a timer, never on a
// session's data path; a trickle of logins (fewer than burstMinLogins
// within burstQuiet of each other) never triggers one, and a steady
// stream triggers none until it pauses. Data transfers are not counted:
// their buffers are pooled. Collections are at least burstEvery apart (a
// burst ending sooner is collected then), so that users who can log in
// cannot make the gateway collect back to back.
type burstCollector struct {
	quiet time.Duration
	min   int
	every time.Duration // at least this long between collections
	gc    func(logins int)
	now   func() time.Time

	mu    sync.Mutex
	n     int         // logins in the current burst
	timer *time.Timer // fires burstQuiet after the last login
	last  time.Time   // when the last collection started
}

// Burst bounds: see burstCollector.
const (
	burstQuiet     = 500 * time.Millisecond
	burstMinLogins = 16
	burstEvery     = 10 * time.Second
)

func newBurstCollector(log *slog.Logger) *burstCollector {
	return &burstCollector{quiet: burstQuiet, min: burstMinLogins, every: burstEvery, now: time.Now, gc: func(logins int) {
		start := time.Now()
		debug.FreeOSMemory()
		log.Debug("collected the garbage of a burst of logins", "logins", logins, "took", time.Since(start))
	}}
}

// login counts one login into the current burst and pushes its end back.
func (b *burstCollector) login() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	if b.timer == nil {
		b.timer = time.AfterFunc(b.quiet, b.quietFor)
		return
	}
	b.timer.Reset(b.quiet)
}

// quietFor runs when no login came for b.quiet: the burst is over, and
// collected if it was large enough.
func (b *burstCollector) quietFor() {
	b.mu.Lock()
	n := b.n
	if n < b.min {
		b.n = 0
		b.mu.Unlock()
		return
	}
	now := b.now()
	if wait := b.every - now.Sub(b.last); !b.last.IsZero() && wait > 0 {
		// Too soon after the last one: collect when allowed, with
		// whatever logins come meanwhile.
		b.timer.Reset(wait)
		b.mu.Unlock()
		return
	}
	b.n = 0
	b.last = now
	b.mu.Unlock()
	b.gc(n)
}

// stop stops the timer; a collection already running finishes.
func (b *burstCollector) stop() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
	}
}
