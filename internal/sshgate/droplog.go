package sshgate

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/portcullis/portcullis/internal/authlimit"
	"github.com/portcullis/portcullis/internal/metrics"
)

// dropLog reports connections closed before their handshake without
// letting a flood flood the log: every drop is counted in the metrics, but
// the log gets the first drop of a source at once and then, at most once
// per interval, one line with how many more there were. A flood of 250,000
// drops from one source writes a line a minute, not 250,000.
//
// The table of sources is bounded (maxDropSources); drops from sources
// that do not fit are summed into one line per interval under no source.
// Summaries are written by a timer that the first pending count arms and
// stop ends; no goroutine waits in between.
type dropLog struct {
	log      *slog.Logger
	metrics  *metrics.Metrics
	interval time.Duration
	now      func() time.Time

	mu       sync.Mutex
	sources  map[netip.Prefix]*dropCount
	overflow dropCount // drops of sources the full table could not take
	timer    *time.Timer
	stopped  bool
}

// dropCount is what dropLog holds for one source in the current interval.
type dropCount struct {
	since  time.Time // when the interval began: the source's first logged drop
	more   int       // drops since, not logged yet
	reason string    // the latest reason, for the summary
}

// maxDropSources bounds dropLog's table: past it a flood from many
// addresses costs a counter, not memory.
const maxDropSources = 4096

func newDropLog(log *slog.Logger, m *metrics.Metrics, interval time.Duration) *dropLog {
	return &dropLog{log: log, metrics: m, interval: interval, now: time.Now, sources: map[netip.Prefix]*dropCount{}}
}

// drop counts one dropped connection from src; class is its metrics.Drop
// reason and reason the words for the log.
func (d *dropLog) drop(src netip.Addr, class, reason string) {
	d.metrics.Dropped(class)
	key := authlimit.SourcePrefix(src)
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if dc := d.sources[key]; dc != nil {
		dc.more++
		dc.reason = reason
		d.armLocked(d.interval)
		return
	}
	if len(d.sources) >= maxDropSources {
		if d.overflow.more == 0 {
			d.overflow.since = now
		}
		d.overflow.more++
		d.overflow.reason = reason
		d.armLocked(d.interval)
		return
	}
	d.sources[key] = &dropCount{since: now, reason: reason}
	d.armLocked(d.interval)
	d.log.Warn("connection dropped", "source", key.String(), "reason", reason)
}

// armLocked makes sure a summary is due within after: one timer for the
// whole table, for the source whose interval ends first.
func (d *dropLog) armLocked(after time.Duration) {
	if d.timer != nil || d.stopped {
		return
	}
	d.timer = time.AfterFunc(after, func() { d.flush(false) })
}

// flush writes the summaries of the sources whose interval is over (all of
// them when final) and forgets those sources, so that their next drop is
// logged at once; it re-arms for the first interval still running.
func (d *dropLog) flush(final bool) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.timer = nil
	next := d.interval
	for key, dc := range d.sources {
		if left := dc.since.Add(d.interval).Sub(now); left > 0 && !final {
			next = min(next, left)
			continue
		}
		if dc.more > 0 {
			d.log.Warn("connections dropped", "source", key.String(), "reason", dc.reason,
				"count", dc.more, "since", dc.since.UTC().Format(time.RFC3339))
		}
		delete(d.sources, key)
	}
	if d.overflow.more > 0 {
		if left := d.overflow.since.Add(d.interval).Sub(now); left > 0 && !final {
			next = min(next, left)
		} else {
			d.log.Warn("connections dropped from sources not tracked (too many sources)", "reason", d.overflow.reason,
				"count", d.overflow.more, "since", d.overflow.since.UTC().Format(time.RFC3339))
			d.overflow = dropCount{}
		}
	}
	if len(d.sources) > 0 || d.overflow.more > 0 {
		d.armLocked(next)
	}
}

// stop writes every pending summary and cancels the timer. Drops after it
// are still counted and their first logged, but no summary is written.
func (d *dropLog) stop() {
	d.mu.Lock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
	}
	d.mu.Unlock()
	d.flush(true)
}
