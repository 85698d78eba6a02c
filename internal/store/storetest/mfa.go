package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// testMFAEnrollment: an enrollment reads back as stored, pending until
// activated once; enrolling again starts over (new codes, used steps
// forgotten); DeleteMFA removes it all.
func testMFAEnrollment(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	if _, err := s.GetMFAEnrollment(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetMFAEnrollment without one = %v, want ErrNotFound", err)
	}
	if err := s.ActivateMFA(ctx, "alice", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ActivateMFA without an enrollment = %v, want ErrNotFound", err)
	}
	e := store.MFAEnrollment{User: "alice", Secret: []byte("sealed\x00seed"), State: store.MFAPending, CreatedAt: t0}
	if err := s.PutMFAEnrollment(ctx, e, []string{"h1", "h2", "h3"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetMFAEnrollment(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.User != "alice" || !bytes.Equal(got.Secret, e.Secret) || got.State != store.MFAPending ||
		!got.CreatedAt.Equal(t0) || !got.ActivatedAt.IsZero() || got.RecoveryLeft != 3 {
		t.Errorf("GetMFAEnrollment = %+v", got)
	}
	checkUTC(t, "CreatedAt", got.CreatedAt)

	t1 := t0.Add(time.Minute)
	if err := s.ActivateMFA(ctx, "alice", t1); err != nil {
		t.Fatal(err)
	}
	if err := s.ActivateMFA(ctx, "alice", t1.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ActivateMFA of an active enrollment = %v, want ErrNotFound", err)
	}
	if got, _ := s.GetMFAEnrollment(ctx, "alice"); got.State != store.MFAActive || !got.ActivatedAt.Equal(t1) {
		t.Errorf("after ActivateMFA: %+v", got)
	}

	if err := s.UseMFAStep(ctx, "alice", 100, t1); err != nil {
		t.Fatal(err)
	}
	if err := s.UseRecoveryCode(ctx, "alice", "h1", t1); err != nil {
		t.Fatal(err)
	}
	// Enrolling again: a new pending enrollment, only the new codes, and
	// the old steps forgotten.
	e2 := store.MFAEnrollment{User: "alice", Secret: []byte("other"), State: store.MFAPending, CreatedAt: t1}
	if err := s.PutMFAEnrollment(ctx, e2, []string{"h1", "h9"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetMFAEnrollment(ctx, "alice"); got.State != store.MFAPending || string(got.Secret) != "other" || got.RecoveryLeft != 2 {
		t.Errorf("after enrolling again: %+v", got)
	}
	if err := s.UseRecoveryCode(ctx, "alice", "h2", t1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old recovery code after enrolling again = %v, want ErrNotFound", err)
	}
	if err := s.UseRecoveryCode(ctx, "alice", "h1", t1); err != nil {
		t.Errorf("new code with an old code's hash: %v", err)
	}
	if err := s.UseMFAStep(ctx, "alice", 100, t1); err != nil {
		t.Errorf("step used before enrolling again: %v", err)
	}

	if err := s.DeleteMFA(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMFAEnrollment(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetMFAEnrollment after DeleteMFA = %v, want ErrNotFound", err)
	}
	if err := s.UseRecoveryCode(ctx, "alice", "h9", t1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("recovery code after DeleteMFA = %v, want ErrNotFound", err)
	}
	if err := s.DeleteMFA(ctx, "nobody"); err != nil {
		t.Errorf("DeleteMFA of a user without MFA = %v, want nil", err)
	}
	for _, bad := range []store.MFAEnrollment{
		{Secret: []byte("x"), State: store.MFAPending},
		{User: "bob", State: store.MFAPending},
		{User: "bob", Secret: []byte("x")},
	} {
		if err := s.PutMFAEnrollment(ctx, bad, nil); err == nil {
			t.Errorf("PutMFAEnrollment(%+v) = nil, want an error", bad)
		}
	}
}

// testMFAOneTime: a time step and a recovery code are each accepted once
// per user, also when many try at the same moment.
func testMFAOneTime(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	for _, u := range []string{"alice", "bob"} {
		if err := s.PutMFAEnrollment(ctx, store.MFAEnrollment{User: u, Secret: []byte("s"), State: store.MFAPending},
			[]string{"r1", "r2"}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		use  func(user string) error
		used error // what a second use returns
	}{
		{"step", func(u string) error { return s.UseMFAStep(ctx, u, 5000, now) }, store.ErrConflict},
		{"recovery code", func(u string) error { return s.UseRecoveryCode(ctx, u, "r1", now) }, store.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var wins atomic.Int32
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					switch err := c.use("alice"); {
					case err == nil:
						wins.Add(1)
					case !errors.Is(err, c.used):
						t.Errorf("concurrent use: %v, want nil or %v", err, c.used)
					}
				}()
			}
			wg.Wait()
			if n := wins.Load(); n != 1 {
				t.Errorf("%d of 8 concurrent uses succeeded, want exactly 1", n)
			}
			if err := c.use("alice"); !errors.Is(err, c.used) {
				t.Errorf("use again = %v, want %v", err, c.used)
			}
			// Another user's identical step or code is their own.
			if err := c.use("bob"); err != nil {
				t.Errorf("same use by another user: %v", err)
			}
		})
	}
	if got, _ := s.GetMFAEnrollment(ctx, "alice"); got.RecoveryLeft != 1 {
		t.Errorf("RecoveryLeft = %d, want 1", got.RecoveryLeft)
	}
	if err := s.UseRecoveryCode(ctx, "alice", "nope", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown recovery code = %v, want ErrNotFound", err)
	}
	// Old steps are forgotten as new ones are used, never the recent ones.
	if err := s.UseMFAStep(ctx, "alice", 5020, now); err != nil {
		t.Fatal(err)
	}
	if err := s.UseMFAStep(ctx, "alice", 5020, now); !errors.Is(err, store.ErrConflict) {
		t.Errorf("recent step used again = %v, want ErrConflict", err)
	}
}
