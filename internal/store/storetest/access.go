package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	a := store.APIKey{ID: "k1", Name: "ci", Kind: store.APIKeyAccess, Owner: "alice", CreatedBy: "root",
		SecretHash: "h1", SourceCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"}, CreatedAt: t0,
		ExpiresAt: t0.Add(time.Hour)}
	b := store.APIKey{ID: "k2", Name: "reg", Kind: store.APIKeyRegistration, SecretHash: "h2", CreatedAt: t0.Add(time.Second)}
	for _, k := range []store.APIKey{a, b} {
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("CreateAPIKey(%s): %v", k.ID, err)
		}
	}
	if err := s.CreateAPIKey(ctx, store.APIKey{ID: "k1", Kind: "access", SecretHash: "x"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateAPIKey of an existing id = %v, want ErrConflict", err)
	}
	got, err := s.GetAPIKey(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Errorf("GetAPIKey = %+v, want %+v", got, a)
	}
	checkUTC(t, "CreatedAt", got.CreatedAt)
	if _, err := s.GetAPIKey(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAPIKey(nope) = %v, want ErrNotFound", err)
	}
	list, err := s.ListAPIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "k1" || list[1].ID != "k2" || len(list[1].SourceCIDRs) != 0 ||
		!list[1].ExpiresAt.IsZero() || !list[1].RevokedAt.IsZero() {
		t.Errorf("ListAPIKeys = %+v", list)
	}
	r1 := t0.Add(time.Minute)
	if err := s.RevokeAPIKey(ctx, "k1", r1); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAPIKey(ctx, "k1", r1.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetAPIKey(ctx, "k1"); !got.RevokedAt.Equal(r1) {
		t.Errorf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, r1)
	}
	if err := s.RevokeAPIKey(ctx, "nope", r1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeAPIKey(nope) = %v, want ErrNotFound", err)
	}
}

func testSettings(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.GetSetting(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSetting of an unset name = %v, want ErrNotFound", err)
	}
	for _, v := range []string{"true", "false"} {
		if err := s.SetSetting(ctx, "x", v); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetSetting(ctx, "x"); err != nil || got != v {
			t.Errorf("GetSetting = %q, %v; want %q", got, err, v)
		}
	}
}

func testPasswords(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.PasswordHash(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PasswordHash without one = %v, want ErrNotFound", err)
	}
	for _, h := range []string{"$argon2id$1", "$argon2id$2"} {
		if err := s.SetPassword(ctx, "alice", h, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got, err := s.PasswordHash(ctx, "alice"); err != nil || got != h {
			t.Errorf("PasswordHash = %q, %v; want %q", got, err, h)
		}
	}
	for i := 0; i < 2; i++ { // the second time, absent: not an error
		if err := s.DeletePassword(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PasswordHash(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PasswordHash after DeletePassword = %v, want ErrNotFound", err)
	}
}

func testWebSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := store.WebSession{IDHash: "a", User: "alice", CSRFToken: "c", Source: "127.0.0.1:1",
		CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour)}
	b := store.WebSession{IDHash: "b", User: "alice", CSRFToken: "d", CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Minute)}
	c := store.WebSession{IDHash: "c", User: "bob", CSRFToken: "e", CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Minute)}
	for _, ws := range []store.WebSession{a, b, c} {
		if err := s.CreateWebSession(ctx, ws); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateWebSession(ctx, a); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateWebSession twice = %v, want ErrConflict", err)
	}
	if got, err := s.GetWebSession(ctx, "a"); err != nil || !reflect.DeepEqual(got, a) {
		t.Errorf("GetWebSession = %+v, %v; want %+v", got, err, a)
	}
	seen := t0.Add(5 * time.Minute)
	if err := s.TouchWebSession(ctx, "a", seen); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetWebSession(ctx, "a"); !got.LastSeen.Equal(seen) {
		t.Errorf("LastSeen = %v, want %v", got.LastSeen, seen)
	}
	if err := s.TouchWebSession(ctx, "zz", seen); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchWebSession(zz) = %v, want ErrNotFound", err)
	}
	if n, err := s.DeleteExpiredWebSessions(ctx, t0.Add(2*time.Minute)); err != nil || n != 2 {
		t.Errorf("DeleteExpiredWebSessions = %d, %v; want 2", n, err)
	}
	if _, err := s.GetWebSession(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired session still there: %v", err)
	}
	if err := s.CreateWebSession(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUserWebSessions(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := s.GetWebSession(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("session %s of a user whose sessions were deleted: %v", id, err)
		}
	}
	if err := s.DeleteWebSession(ctx, "a"); err != nil {
		t.Errorf("DeleteWebSession of an absent session = %v, want nil", err)
	}
}
