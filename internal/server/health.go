package server

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// storeHealth watches whether the store answers, so that the SSH front
// can refuse new logins while a shared database is down (and accept them
// again, without a restart, once it is back) without asking the database
// on every login.
type storeHealth struct {
	check func(ctx context.Context) error
	down  atomic.Bool
	// slow counts checks in a row that ran out of time; only run touches
	// it.
	slow int
}

// errStoreDown is what a refused login is told.
var errStoreDown = errors.New("the gateway cannot reach its database; try again in a moment")

// slowChecksDown is how many checks in a row must run out of time before
// the store counts as down. One slow answer is what a burst of logins on a
// loaded machine looks like (5,000 sessions opening on 2 cores made a
// SQLite read wait past the check's 2 s), and refusing every login for it
// turned a slow second into failed logins. Logins stay fail-closed
// meanwhile: each reads the store itself and is refused if that read
// fails. Any other error (refused connection, closed database) counts at
// once.
const slowChecksDown = 2

// Available reports errStoreDown while the store counts as down.
func (h *storeHealth) Available() error {
	if h.down.Load() {
		return errStoreDown
	}
	return nil
}

// observe takes the result of one check and reports whether the store's
// state changed, and to what.
func (h *storeHealth) observe(err error) (changed, down bool) {
	switch {
	case err == nil:
		h.slow = 0
	case errors.Is(err, context.DeadlineExceeded):
		h.slow++
		if h.slow < slowChecksDown {
			return false, h.down.Load()
		}
	default:
		h.slow = 0
	}
	down = err != nil
	return h.down.Swap(down) != down, down
}

// run checks every interval until ctx ends, logging each change.
func (h *storeHealth) run(ctx context.Context, interval time.Duration, onChange func(down bool, err error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := h.check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if changed, down := h.observe(err); changed {
			onChange(down, err)
		}
	}
}
