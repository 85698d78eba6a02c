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
}

// errStoreDown is what a refused login is told.
var errStoreDown = errors.New("the gateway cannot reach its database; try again in a moment")

// Available reports errStoreDown while the last check failed.
func (h *storeHealth) Available() error {
	if h.down.Load() {
		return errStoreDown
	}
	return nil
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
		if down := err != nil; h.down.Swap(down) != down {
			onChange(down, err)
		}
	}
}
