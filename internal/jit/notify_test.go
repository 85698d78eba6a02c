package jit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// flaky fails its first fails calls, and blocks while hold is open: a
// notifier that hangs must not hold up a request.
type flaky struct {
	mu    sync.Mutex
	fails int
	calls int
	got   []string
	hold  chan struct{}
}

func (f *flaky) Name() string { return "flaky" }

func (f *flaky) Notify(ctx context.Context, n Notification) error {
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.fails {
		return errors.New("service unavailable")
	}
	f.got = append(f.got, n.Event+" "+n.Request.ID)
	return nil
}

func TestNotificationsRetriedInBackground(t *testing.T) {
	f := &flaky{fails: 3, hold: make(chan struct{})}
	s := newSite(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.svc.Run(ctx, time.Hour) }()
	defer func() { cancel(); <-done }()

	// The notifier hangs; the request returns anyway.
	req, err := s.svc.Request(ctx, Input{Requester: "erin", Target: "web1", Reason: "x"})
	if err != nil {
		t.Fatal(err)
	}
	close(f.hold)
	waitFor(t, func() bool {
		hist, _ := s.svc.History(ctx, req.ID)
		return len(hist) == 2 && hist[1].Kind == "notified"
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls != 4 || len(f.got) != 1 || f.got[0] != "requested "+req.ID {
		t.Fatalf("calls %d, delivered %v", f.calls, f.got)
	}
}

func TestNotificationGivesUp(t *testing.T) {
	f := &flaky{fails: 100}
	s := newSite(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.svc.Run(ctx, time.Hour) }()
	defer func() { cancel(); <-done }()
	req, err := s.svc.Request(ctx, Input{Requester: "erin", Target: "web1", Reason: "x"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		hist, _ := s.svc.History(ctx, req.ID)
		return len(hist) == 2 && hist[1].Kind == "notify-failed"
	})
	if got, _ := s.svc.Get(ctx, req.ID); got.State != store.JITPending {
		t.Fatalf("a failed notification changed the request: %+v", got)
	}
}

// waitFor polls cond: the background work has no other signal to wait
// on. It fails only after a minute, so no timing threshold decides the
// test.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within a minute")
}
