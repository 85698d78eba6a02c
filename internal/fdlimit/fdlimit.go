// Package fdlimit keeps the gateway inside its limit of open files: it
// raises the soft RLIMIT_NOFILE to the hard limit at start, and its Budget
// says whether a new connection or session still fits, so that the gateway
// refuses new work with a message before accept, dial or a recording file
// fail with "too many open files" for everyone.
package fdlimit

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// Raise lifts the soft limit on open files to the hard limit and returns
// both as they are afterwards. The Go runtime does the same at start on
// Linux; Raise makes it explicit, so the values can be logged and checked.
func Raise() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return lim.Cur, lim.Max, fmt.Errorf("raise RLIMIT_NOFILE from %d to %d: %w", lim.Cur, lim.Max, err)
		}
		lim = raised
	}
	return lim.Cur, lim.Max, nil
}

// Budget tracks how many descriptors the process may still open.
//
// Counting the open descriptors means reading /proc/self/fd, which costs
// one entry per descriptor: a gateway with 2,000 sessions has some 6,000.
// So Budget counts at most every recountEvery while there is room, and in
// between adds what it admitted to the last count, never subtracting what
// closed: the estimate only errs high. Only when the estimate comes near
// the limit does it count again (at most every minRecount), so that a
// gateway near its limit notices at once that sessions have ended.
//
// The zero value is ready to use. Safe for concurrent use.
type Budget struct {
	// Reserve is how many descriptors to keep free for the sessions
	// already running (a recording file, a dial, the store). Zero takes
	// DefaultReserve of the limit.
	Reserve int

	mu       sync.Mutex
	open     int       // descriptors open at the last count
	limit    int       // soft RLIMIT_NOFILE at the last count
	admitted int       // descriptors admitted since the last count
	counted  time.Time // when open was counted; zero: never
	// now is time.Now unless a test stops the clock.
	now func() time.Time
}

const (
	recountEvery = 100 * time.Millisecond
	minRecount   = 5 * time.Millisecond
)

// DefaultReserve is the reserve for a limit: a tenth of it, at least 16 and
// at most 256.
func DefaultReserve(limit int) int {
	return min(256, max(16, limit/10))
}

// Admit reports whether cost more descriptors fit while keeping the
// reserve free (keep is the fraction of the reserve to keep, in percent:
// 100 for a new session, less for cheaper work that must still get
// through to be told why), and counts them if so.
func (b *Budget) Admit(cost, keep int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.now != nil {
		now = b.now()
	}
	if b.counted.IsZero() || now.Sub(b.counted) >= recountEvery {
		b.countLocked(now)
	}
	fits := func() bool { return b.limit-b.open-b.admitted-cost >= b.reserveLocked()*keep/100 }
	if !fits() && now.Sub(b.counted) >= minRecount {
		b.countLocked(now)
	}
	if !fits() {
		return false
	}
	b.admitted += cost
	return true
}

// Free counts the open descriptors now and returns how many more the
// process may open before its soft limit.
func (b *Budget) Free() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.countLocked(time.Now())
	return b.limit - b.open
}

func (b *Budget) reserveLocked() int {
	if b.Reserve > 0 {
		return b.Reserve
	}
	return DefaultReserve(b.limit)
}

// countLocked reads the limit and counts the open descriptors. If either
// cannot be read (no /proc), it assumes there is room: the accept loop's
// backoff on EMFILE still keeps the gateway up. Out of descriptors to read
// /proc with, it assumes there is none.
func (b *Budget) countLocked(now time.Time) {
	b.counted, b.admitted = now, 0
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		b.limit, b.open = 1<<30, 0
		return
	}
	b.limit = int(lim.Cur)
	n, err := openFiles()
	switch {
	case errors.Is(err, syscall.EMFILE):
		b.open = b.limit // it cannot even open the directory: no room
	case err != nil:
		b.open = 0
	default:
		b.open = n
	}
}

// openFiles counts the entries of /proc/self/fd, less the one reading it.
func openFiles() (int, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("count open files: %w", err)
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(1024)
		n += len(names)
		if err != nil || len(names) == 0 {
			break
		}
	}
	return n - 1, nil
}
