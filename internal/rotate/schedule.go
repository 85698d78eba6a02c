package rotate

import (
	"context"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
)

// retryAfter is how long the schedule waits before trying again an
// account whose rotation failed: often enough to recover soon after the
// target is fixed, rarely enough not to flood the audit trail.
const retryAfter = time.Hour

// Run rotates, every interval until ctx ends, the accounts whose
// rotate_every has elapsed since their key was made. The server runs it in
// one goroutine (see internal/server). With several gateways sharing a
// store each runs its own schedule; a rotation that lost a race to another
// gateway fails its final compare-and-store and restores the file, and the
// account is not rotated twice.
func (r *Rotator) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, a := range r.Due() {
			if ctx.Err() != nil {
				return
			}
			if _, err := r.Rotate(ctx, a.Target, a.Name, "schedule"); err != nil {
				r.cfg.Log.Warn("scheduled key rotation failed", "account", a.GetName(), "err", err)
				r.mu.Lock()
				r.failedAt[a.GetName()] = r.cfg.Now()
				r.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Due lists the accounts whose scheduled rotation is due now, skipping
// those that failed less than an hour ago.
func (r *Rotator) Due() []*resource.Account {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var due []*resource.Account
	for _, a := range r.cfg.Inventory.Snapshot().Accounts() {
		if a.RotateEvery == 0 {
			continue
		}
		if f, ok := r.failedAt[a.GetName()]; ok && now.Sub(f) < retryAfter {
			continue
		}
		// An account stored before public_key_created existed counts as due:
		// nothing says how old its key is.
		if a.KeyCreated == nil || now.Sub(*a.KeyCreated) >= a.RotateEvery.Std() {
			due = append(due, a)
		}
	}
	return due
}
