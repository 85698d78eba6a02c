package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

func testRegistrationKeyUses(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	keys := []store.APIKey{
		{ID: "limited", Kind: store.APIKeyRegistration, SecretHash: "h", CreatedAt: t0, MaxUses: 3,
			Environment: "prod", NamePattern: "web-*"},
		{ID: "expiring", Kind: store.APIKeyRegistration, SecretHash: "h", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		{ID: "revoked", Kind: store.APIKeyRegistration, SecretHash: "h", CreatedAt: t0},
		{ID: "access", Kind: store.APIKeyAccess, Owner: "alice", SecretHash: "h", CreatedAt: t0},
	}
	for _, k := range keys {
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeAPIKey(ctx, "revoked", t0); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAPIKey(ctx, "limited")
	if err != nil {
		t.Fatal(err)
	}
	if got.Environment != "prod" || got.MaxUses != 3 || got.NamePattern != "web-*" || got.Uses != 0 {
		t.Fatalf("limits not stored: %+v", got)
	}
	// Ten agents race for three uses: exactly three win.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.UseRegistrationKey(ctx, "limited", t0)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("UseRegistrationKey: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 3 {
		t.Fatalf("%d registrations got through a key limited to 3", wins.Load())
	}
	if got, _ := s.GetAPIKey(ctx, "limited"); got.Uses != 3 {
		t.Fatalf("uses = %d, want 3", got.Uses)
	}
	cases := []struct {
		id   string
		at   time.Time
		want error
	}{
		{"expiring", t0.Add(time.Minute), nil},
		{"expiring", t0.Add(time.Hour), store.ErrConflict},
		{"revoked", t0, store.ErrConflict},
		{"access", t0, store.ErrConflict},
		{"absent", t0, store.ErrNotFound},
	}
	for _, c := range cases {
		err := s.UseRegistrationKey(ctx, c.id, c.at)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("UseRegistrationKey(%s, %v) = %v, want %v", c.id, c.at, err, c.want)
		}
	}
}

func testAgents(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := store.Agent{Target: "web1", PublicKey: "ssh-ed25519 AAAA", Mode: "forward", Version: "1.2.0",
		KeyID: "k1", RegisteredAt: t0}
	if err := s.PutAgent(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.AgentConnected(ctx, "web1", "gw-a", "1.2.1", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// Another gateway takes the agent over; the first one's late
	// heartbeat and disconnect leave the row alone.
	if err := s.AgentConnected(ctx, "web1", "gw-b", "1.2.1", t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.AgentSeen(ctx, "web1", "gw-a", t0.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.AgentDisconnected(ctx, "web1", "gw-a", t0.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAgent(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Gateway != "gw-b" || !got.ConnectedAt.Equal(t0.Add(2*time.Second)) || !got.LastSeen.Equal(t0.Add(2*time.Second)) ||
		got.Version != "1.2.1" || got.PublicKey != a.PublicKey || got.Mode != "forward" || got.KeyID != "k1" {
		t.Fatalf("after takeover: %+v", got)
	}
	if err := s.AgentSeen(ctx, "web1", "gw-b", t0.Add(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.AgentDisconnected(ctx, "web1", "gw-b", t0.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetAgent(ctx, "web1")
	if got.Gateway != "" || !got.ConnectedAt.IsZero() || !got.LastSeen.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("after disconnect: %+v", got)
	}
	if err := s.AgentConnected(ctx, "nope", "gw-a", "1", t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AgentConnected(nope) = %v, want ErrNotFound", err)
	}
	// Registering again (--force) replaces the identity and clears the
	// connection.
	if err := s.AgentConnected(ctx, "web1", "gw-a", "1.2.1", t0.Add(6*time.Second)); err != nil {
		t.Fatal(err)
	}
	a.PublicKey = "ssh-ed25519 BBBB"
	if err := s.PutAgent(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetAgent(ctx, "web1")
	if got.PublicKey != a.PublicKey || got.Gateway != "" || !got.ConnectedAt.IsZero() {
		t.Fatalf("after re-registration: %+v", got)
	}
	if err := s.PutAgent(ctx, store.Agent{Target: "db1", PublicKey: "k", RegisteredAt: t0}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListAgents(ctx)
	if err != nil || len(list) != 2 || list[0].Target != "db1" || list[1].Target != "web1" {
		t.Fatalf("ListAgents = %+v, %v", list, err)
	}
	if err := s.DeleteAgent(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAgent(ctx, "web1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAgent after delete = %v", err)
	}
}

func testListSettings(t *testing.T, s store.Store) {
	ctx := context.Background()
	for n, v := range map[string]string{"agent_peer.a": "1", "agent_peer.b": "2", "agent_peerx": "3", "other": "4"} {
		if err := s.SetSetting(ctx, n, v); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListSettings(ctx, "agent_peer.")
	if err != nil || len(got) != 2 || got["agent_peer.a"] != "1" || got["agent_peer.b"] != "2" {
		t.Fatalf("ListSettings = %v, %v", got, err)
	}
}
