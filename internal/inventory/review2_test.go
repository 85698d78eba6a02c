package inventory

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// pauseAfterGet lets the test run another gateway between Create's
// existence check (Get) and its write.
type pauseAfterGet struct {
	store.Store
	inGet   chan struct{}
	release chan struct{}
	once    sync.Once
}

// Get pauses the first time only (Create reads again after a conflict).
func (p *pauseAfterGet) Get(ctx context.Context, kind, name string) (store.Record, error) {
	rec, err := p.Store.Get(ctx, kind, name)
	p.once.Do(func() {
		close(p.inGet)
		<-p.release
	})
	return rec, err
}

// TestReview2CreateRaceAcrossGateways: Create's "only if absent" is
// guarded by inv.mu, which is one process's lock. Two gateways sharing a
// database (issue 7) registering the same target at once both see it
// absent; the later write then goes through applyLocked as an update and
// silently replaces the other's target, pinned host key included, and both
// registrations answer 201 Created. Whoever registers second (an agent with
// a registration key, or an attacker holding one) replaces the pinned host
// key of a target another registration just created.
func TestReview2CreateRaceAcrossGateways(t *testing.T) {
	ctx := context.Background()
	a := newGateway(t, "", nil)
	b := newGateway(t, a.path, a.vault)
	p := &pauseAfterGet{Store: a.store, inGet: make(chan struct{}), release: make(chan struct{})}
	a.inv.store = p

	legit, other := newKey(t), newKey(t)
	type result struct {
		obj resource.Object
		err error
	}
	done := make(chan result, 1)
	go func() {
		o, err := a.inv.Create(ctx, &resource.Target{Kind: resource.KindTarget, Name: "db1", Address: "10.0.0.9:22", HostKey: other.line})
		done <- result{o, err}
	}()
	select {
	case <-p.inGet:
	case <-time.After(10 * time.Second):
		t.Fatal("Create never read the store")
	}
	if _, err := b.inv.Create(ctx, &resource.Target{Kind: resource.KindTarget, Name: "db1", Address: "10.0.0.5:22", HostKey: legit.line}); err != nil {
		t.Fatalf("first registration (gateway b): %v", err)
	}
	close(p.release)
	r := <-done
	if !errors.Is(r.err, ErrExists) {
		got, _ := b.inv.Get(ctx, resource.KindTarget, "db1")
		t.Errorf("second registration (gateway a) = %v, want ErrExists; the stored target is now %+v (the first registration's host key was replaced)", r.err, got)
	}
}
