package mfa

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// slowStore holds every GetMFAEnrollment until n callers are inside it (or
// a second has passed), as a store round trip under load does: it widens
// the window between checkLimits and fail.
type slowStore struct {
	store.Store
	n       int32
	arrived atomic.Int32
	all     chan struct{}
	once    sync.Once
}

func (s *slowStore) GetMFAEnrollment(ctx context.Context, user string) (store.MFAEnrollment, error) {
	if s.arrived.Add(1) >= s.n {
		s.once.Do(func() { close(s.all) })
	}
	select {
	case <-s.all:
	case <-time.After(time.Second):
	}
	return s.Store.GetMFAEnrollment(ctx, user)
}

// TestReview2ConcurrentGuessesBypassUserLimit: the per-user limit is
// checked (TokensAt >= 1) before the code is looked at and only charged
// (AllowN) after it was found wrong. Guesses sent in parallel all pass the
// check before any is charged, so one attacker with the first factor gets
// as many TOTP guesses per Refill as connections it opens, not UserBurst.
func TestReview2ConcurrentGuessesBypassUserLimit(t *testing.T) {
	const burst, parallel = 3, 30
	e := newEnv(t, Config{UserBurst: burst, SourceBurst: 1000})
	en := e.enrolled(t, "alice")
	valid := map[string]bool{}
	for _, d := range []time.Duration{-period, 0, period} {
		valid[e.code(t, en.Secret, d)] = true
	}
	wrong := "000000"
	for i := 0; valid[wrong]; i++ {
		wrong = []string{"111111", "222222", "333333"}[i]
	}
	slow := &slowStore{Store: e.st, n: parallel, all: make(chan struct{})}
	e.svc.cfg.Store = slow

	var checked atomic.Int32 // attempts whose code was actually compared
	var wg sync.WaitGroup
	for i := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := attempt("alice", wrong)
			a.Source = "192.0.2.7:" + string(rune('a'+i))
			_, err := e.svc.Verify(context.Background(), a)
			switch {
			case errors.Is(err, ErrInvalid):
				checked.Add(1)
			case errors.Is(err, ErrLocked):
			default:
				t.Errorf("Verify: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := checked.Load(); n > burst {
		t.Errorf("%d parallel wrong codes were compared against the secret, want at most UserBurst=%d: the limiter is checked before and charged after the guess", n, burst)
	}
}
