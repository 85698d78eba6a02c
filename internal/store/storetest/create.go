package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/portcullis/portcullis/internal/store"
)

// testCreateOnly: a Create put of an existing resource fails the whole
// batch with ErrConflict and changes nothing; of an absent one, it is an
// ordinary insert.
func testCreateOnly(t *testing.T, s store.Store) {
	ctx := context.Background()
	apply(t, s, put("User", "alice", map[string]string{"v": "1"}, nil))
	rev := revision(t, s)
	c := put("User", "alice", map[string]string{"v": "2"}, nil)
	c.Create = true
	err := s.Apply(ctx, []store.Change{put("User", "bob", map[string]string{}, nil), c})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Create of an existing resource = %v, want ErrConflict", err)
	}
	if _, err := s.Get(ctx, "User", "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the failed batch stored bob: %v", err)
	}
	if got := get(t, s, "User", "alice"); !sameJSON(t, got.Spec, []byte(`{"v":"1"}`)) {
		t.Errorf("alice changed: %s", got.Spec)
	}
	if revision(t, s) != rev {
		t.Error("a failed batch moved the revision")
	}
	c = put("User", "carol", map[string]string{}, []byte("sealed"))
	c.Create = true
	apply(t, s, c)
	if got := get(t, s, "User", "carol"); string(got.Secret) != "sealed" {
		t.Errorf("created carol: secret %q", got.Secret)
	}
}
