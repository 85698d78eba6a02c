package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

func testJITRequests(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 123, time.UTC)
	r := store.JITRequest{ID: "req-1", Requester: "alice", Policy: "jit-web", Target: "web1", Account: "ubuntu",
		Duration: 2 * time.Hour, Reason: "incident 42", State: store.JITPending, CreatedAt: t0}
	if err := s.CreateJITRequest(ctx, r, store.JITEvent{Kind: "requested", Actor: "alice", Channel: "cli", Time: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJITRequest(ctx, r, store.JITEvent{Kind: "requested"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	r2 := r
	r2.ID, r2.Requester, r2.CreatedAt = "req-2", "bob", t0.Add(time.Minute)
	if err := s.CreateJITRequest(ctx, r2, store.JITEvent{Kind: "requested", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetJITRequest(ctx, "req-1")
	if err != nil || got != r {
		t.Fatalf("get: %+v %v, want %+v", got, err, r)
	}
	if _, err := s.GetJITRequest(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}

	// Two approvers race: exactly one moves the request.
	approved := r
	approved.State, approved.Approval, approved.Grant, approved.DecidedBy = store.JITApproved, "manual", "JIT-abcd1234", "carol"
	approved.DecidedAt, approved.ExpiresAt = t0.Add(time.Minute), t0.Add(time.Minute+2*time.Hour)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.TransitionJITRequest(ctx, approved, store.JITPending, store.JITEvent{Kind: "approved", Actor: "carol", Channel: "slack"})
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("racing approval: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d approvals won, want 1", wins)
	}
	if err := s.TransitionJITRequest(ctx, approved, store.JITPending, store.JITEvent{Kind: "approved"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("approve again: %v", err)
	}
	if err := s.TransitionJITRequest(ctx, store.JITRequest{ID: "nope", State: store.JITDenied}, store.JITPending, store.JITEvent{Kind: "denied"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("transition unknown: %v", err)
	}
	expired := approved
	expired.State = store.JITExpired
	if err := s.TransitionJITRequest(ctx, expired, store.JITApproved, store.JITEvent{Kind: "expired", Actor: "gateway"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendJITEvent(ctx, store.JITEvent{Request: "req-1", Kind: "notified", Channel: "slack", Detail: "bad\x00text"}); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetJITRequest(ctx, "req-1")
	if err != nil || got != expired {
		t.Fatalf("after expiry: %+v %v, want %+v", got, err, expired)
	}
	evs, err := s.ListJITEvents(ctx, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind)
	}
	if want := []string{"requested", "approved", "expired", "notified"}; !equalStrings(kinds, want) {
		t.Fatalf("history %v, want %v", kinds, want)
	}
	if evs[0].Time != t0 || evs[1].Channel != "slack" || evs[3].Detail != "bad\uFFFDtext" {
		t.Fatalf("history fields: %+v", evs)
	}

	for _, c := range []struct {
		f    store.JITFilter
		want []string
	}{
		{store.JITFilter{}, []string{"req-2", "req-1"}},
		{store.JITFilter{State: store.JITExpired}, []string{"req-1"}},
		{store.JITFilter{State: store.JITPending}, []string{"req-2"}},
		{store.JITFilter{Requester: "alice"}, []string{"req-1"}},
		{store.JITFilter{Limit: 1}, []string{"req-2"}},
		{store.JITFilter{State: store.JITRevoked}, nil},
	} {
		list, err := s.ListJITRequests(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range list {
			ids = append(ids, r.ID)
		}
		if !equalStrings(ids, c.want) {
			t.Errorf("list %+v: %v, want %v", c.f, ids, c.want)
		}
	}
}

func testJITLinks(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, l := range []store.JITLink{
		{TokenHash: "h1", Request: "req-1", Action: "approve", ExpiresAt: now.Add(time.Hour)},
		{TokenHash: "h2", Request: "req-1", Action: "deny", ExpiresAt: now.Add(-time.Second)},
	} {
		if err := s.CreateJITLink(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.UseJITLink(ctx, "h1", now)
	if err != nil || l.Request != "req-1" || l.Action != "approve" || !l.UsedAt.Equal(now) {
		t.Fatalf("use: %+v %v", l, err)
	}
	if got, err := s.GetJITLink(ctx, "h2"); err != nil || got.Action != "deny" || !got.UsedAt.IsZero() {
		t.Fatalf("get unused link: %+v %v", got, err)
	}
	if got, err := s.GetJITLink(ctx, "h1"); err != nil || !got.UsedAt.Equal(now) {
		t.Fatalf("get used link: %+v %v", got, err)
	}
	if _, err := s.GetJITLink(ctx, "unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown link: %v", err)
	}
	for _, h := range []string{"h1", "h2", "unknown"} {
		if _, err := s.UseJITLink(ctx, h, now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("use %s: %v, want ErrNotFound", h, err)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
