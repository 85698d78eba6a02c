package storetest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// RunShared runs the cases for gateways sharing one database: open must
// return two stores opened separately on one new, empty database, as two
// gateways would open it (two processes on one SQLite file, two
// connection pools on one PostgreSQL database). RunShared closes both
// when the case ends.
//
// What it pins down beyond Run: whatever one store writes, the other
// reads; writes from both interleave without errors, deadlocks or lost
// updates; the audit trail stays one chain (no fork, no gap) with IDs
// growing in chain order however the two append; a first-use host key is
// recorded once across both; a gateway restarting interrupts only its own
// active recordings.
func RunShared(t *testing.T, open func(t *testing.T) (a, b store.Store)) {
	cases := []struct {
		name string
		run  func(t *testing.T, a, b store.Store)
	}{
		{"SeeEachOther", testSharedSeeEachOther},
		{"ConcurrentApply", testSharedConcurrentApply},
		{"ConcurrentAudit", testSharedConcurrentAudit},
		{"AuditRetentionWhileAppending", testSharedAuditRetention},
		{"HostKeyFirstUse", testSharedHostKeyFirstUse},
		{"RecordingsAndCommands", testSharedRecordingsAndCommands},
		{"InterruptOwnRecordings", testSharedInterruptOwnRecordings},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := open(t)
			t.Cleanup(func() {
				if err := errors.Join(a.Close(), b.Close()); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			c.run(t, a, b)
		})
	}
}

// both runs f on each store, a first, with the other store as other.
func both(a, b store.Store, f func(s, other store.Store, name string)) {
	f(a, b, "a")
	f(b, a, "b")
}

func testSharedSeeEachOther(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	r0 := revision(t, b)
	apply(t, a, put("User", "alice", map[string]int{"v": 1}, []byte("sealed")))
	if r := revision(t, b); r != r0+1 {
		t.Errorf("b's Revision after a's Apply = %d, want %d", r, r0+1)
	}
	if rec := get(t, b, "User", "alice"); string(rec.Secret) != "sealed" {
		t.Errorf("b reads a's record with secret %q", rec.Secret)
	}
	// A put through b keeps what a stored and moves the revision for a.
	apply(t, b, put("User", "alice", map[string]int{"v": 2}, nil))
	if rec := get(t, a, "User", "alice"); string(rec.Secret) != "sealed" || !sameJSON(t, rec.Spec, []byte(`{"v":2}`)) {
		t.Errorf("a reads b's update as %s %q", rec.Spec, rec.Secret)
	}
	if r := revision(t, a); r != r0+2 {
		t.Errorf("a's Revision after b's Apply = %d, want %d", r, r0+2)
	}
	apply(t, b, del("User", "alice"))
	if _, err := a.Get(ctx, "User", "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a's Get after b's delete: err = %v, want ErrNotFound", err)
	}

	if err := a.SetSetting(ctx, "x", "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := b.GetSetting(ctx, "x"); err != nil || v != "1" {
		t.Errorf("b's GetSetting = %q, %v; want a's 1", v, err)
	}
	if err := a.CreateAPIKey(ctx, store.APIKey{ID: "k1", Kind: store.APIKeyAccess, SecretHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := b.RevokeAPIKey(ctx, "k1", time0); err != nil {
		t.Errorf("b revokes a's API key: %v", err)
	}
	if k, err := a.GetAPIKey(ctx, "k1"); err != nil || k.RevokedAt.IsZero() {
		t.Errorf("a's GetAPIKey after b revoked it = %+v, %v", k, err)
	}
	ws := store.WebSession{IDHash: "h1", User: "alice", CreatedAt: time0, LastSeen: time0, ExpiresAt: time0}
	if err := a.CreateWebSession(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateWebSession(ctx, ws); !errors.Is(err, store.ErrConflict) {
		t.Errorf("b creates a session a created: err = %v, want ErrConflict", err)
	}
	if got, err := b.GetWebSession(ctx, "h1"); err != nil || got.User != "alice" {
		t.Errorf("b's GetWebSession = %+v, %v; want a's session", got, err)
	}
}

// time0 is a fixed time for records whose exact time does not matter.
var time0 = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)

func testSharedConcurrentApply(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	r0 := revision(t, a)
	const writers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers*each)
	both(a, b, func(s, _ store.Store, name string) {
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					// Every batch touches the shared records in an order
					// that depends on the writer: batches from the two
					// stores cross, which must wait, never deadlock.
					shared := []store.Change{put("K", "x", i, nil), put("K", "y", i, nil)}
					if w%2 == 1 {
						slices.Reverse(shared)
					}
					own := put("K", fmt.Sprintf("%s-%d-%d", name, w, i), i, nil)
					if err := s.Apply(ctx, append(shared, own)); err != nil {
						errs <- fmt.Errorf("store %s writer %d: %w", name, w, err)
						return
					}
				}
			})
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := r0 + 2*writers*each
	both(a, b, func(s, _ store.Store, name string) {
		if r := revision(t, s); r != want {
			t.Errorf("store %s: Revision %d, want %d (one per Apply from either store)", name, r, want)
		}
		recs, err := s.List(ctx, "K")
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2+2*writers*each {
			t.Errorf("store %s: %d records, want %d", name, len(recs), 2+2*writers*each)
		}
	})
}

func testSharedConcurrentAudit(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	const goroutines, each = 4, 25
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		byID = map[int64]string{} // id -> writer
		errs = make(chan error, 2*goroutines*each)
	)
	both(a, b, func(s, _ store.Store, name string) {
		for g := range goroutines {
			wg.Go(func() {
				writer := fmt.Sprintf("%s%d", name, g)
				last := int64(0)
				for i := range each {
					id, err := s.AppendAudit(ctx, store.AuditEvent{
						Type: "session.data", SessionID: writer, Message: fmt.Sprint(i),
						Detail: map[string]any{"i": i, "writer": writer},
					})
					if err != nil {
						errs <- fmt.Errorf("writer %s: %w", writer, err)
						return
					}
					if id <= last {
						errs <- fmt.Errorf("writer %s: id %d after %d: ids must grow", writer, id, last)
					}
					last = id
					mu.Lock()
					if w, dup := byID[id]; dup {
						errs <- fmt.Errorf("id %d handed to writers %s and %s", id, w, writer)
					}
					byID[id] = writer
					mu.Unlock()
				}
			})
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 2 * goroutines * each
	both(a, b, func(s, _ store.Store, name string) {
		evs := listAudit(t, s, store.AuditFilter{Limit: 2 * total})
		if len(evs) != total {
			t.Fatalf("store %s: %d events, want %d", name, len(evs), total)
		}
		// One chain, in ID order: no fork (two events after one), no gap.
		checkChain(t, evs, "")
		for _, ev := range evs {
			if byID[ev.ID] != ev.SessionID {
				t.Errorf("store %s: event %d from %q, but AppendAudit returned it to %q", name, ev.ID, ev.SessionID, byID[ev.ID])
			}
		}
		v, err := audit.Verify(ctx, s, nil, nil)
		if err != nil {
			t.Fatalf("store %s: Verify: %v", name, err)
		}
		if !v.OK || v.Events != total || v.StartsAfterRetention {
			t.Errorf("store %s: Verify = %+v (first bad %+v), want OK over %d events from the start", name, v, v.FirstBad, total)
		}
	})
}

// testSharedAuditRetention: retention run through one store while the
// other appends leaves a trail that still verifies from its first kept
// event, on the latest retention checkpoint.
func testSharedAuditRetention(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := audit.NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		cps []store.AuditCheckpoint
	)
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	wg.Go(func() {
		for i := range n {
			if _, err := b.AppendAudit(ctx, store.AuditEvent{Type: "x", Message: fmt.Sprint(i)}); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for range n / 10 {
			// Every event so far is older than now: each call removes the
			// whole trail it sees.
			removed, cp, err := a.PruneAudit(ctx, time0.AddDate(100, 0, 0), func(first int64, anchor string) (store.AuditCheckpoint, error) {
				return key.Sign(store.AuditCheckpoint{Kind: store.CheckpointRetention, EventID: first, Hash: anchor, Time: time.Now()}), nil
			})
			if err != nil {
				errs <- err
				return
			}
			if removed > 0 {
				mu.Lock()
				cps = append(cps, cp)
				mu.Unlock()
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := b.AppendAudit(ctx, store.AuditEvent{Type: "x", Message: "last"}); err != nil {
		t.Fatal(err)
	}
	evs := listAudit(t, a, store.AuditFilter{})
	if len(evs) == 0 {
		t.Fatal("no events left, want at least the last")
	}
	checkChain(t, evs, evs[0].PrevHash)
	v, err := audit.Verify(ctx, a, key.Public(), cps)
	if err != nil || !v.OK {
		t.Errorf("Verify after retention during appends = %+v (first bad %+v), %v; want OK", v, v.FirstBad, err)
	}
}

func testSharedHostKeyFirstUse(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	const racers = 4 // per store
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins []string
	)
	both(a, b, func(s, _ store.Store, name string) {
		for i := range racers {
			wg.Go(func() {
				key := fmt.Sprintf("ssh-ed25519 KEY-%s-%d", name, i)
				err := s.RecordHostKey(ctx, store.HostKey{Target: "db1:22", Key: key})
				switch {
				case err == nil:
					mu.Lock()
					wins = append(wins, key)
					mu.Unlock()
				case !errors.Is(err, store.ErrConflict):
					t.Errorf("store %s racer %d: err = %v, want nil or ErrConflict", name, i, err)
				}
			})
		}
	})
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d racers recorded a first key (%v), want exactly one", len(wins), wins)
	}
	both(a, b, func(s, _ store.Store, name string) {
		if hk, err := s.HostKey(ctx, "db1:22"); err != nil || hk.Key != wins[0] {
			t.Errorf("store %s: HostKey = %+v, %v; want the winner's %s", name, hk, err, wins[0])
		}
	})
}

// testSharedRecordingsAndCommands: recordings, their text and commands
// written through either store are listed and searched together.
func testSharedRecordingsAndCommands(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	createRecording(t, a, store.Recording{ID: "ra", User: "alice", StartedAt: time0})
	createRecording(t, b, store.Recording{ID: "rb", User: "bob", StartedAt: time0.Add(1)})
	if err := b.CreateRecording(ctx, store.Recording{ID: "ra"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("b creates a's recording: err = %v, want ErrConflict", err)
	}
	indexText(t, a, store.TextChunk{RecordingID: "ra", Offset: 1, Text: "systemctl restart nginx"})
	indexText(t, b, store.TextChunk{RecordingID: "rb", Offset: 2, Text: "systemctl status nginx"})
	// Text for a recording the other store created.
	indexText(t, b, store.TextChunk{RecordingID: "ra", Offset: 3, Text: "journalctl -u nginx"})
	if err := b.FinishRecording(ctx, "ra", store.RecordingEnded, time0.Add(5), 10, "h"); err != nil {
		t.Errorf("b finishes a's recording: %v", err)
	}
	both(a, b, func(s, _ store.Store, name string) {
		recs, err := s.ListRecordings(ctx, store.RecordingFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if got := recordingIDs(recs); !slices.Equal(got, []string{"rb", "ra"}) {
			t.Errorf("store %s: ListRecordings = %v, want [rb ra]", name, got)
		}
		if got := hitIDs(search(t, s, "nginx", 0)); !slices.Equal(got, []string{"ra", "rb"}) {
			t.Errorf("store %s: search nginx = %v, want [ra rb] (ra's text was indexed last)", name, got)
		}
		if got := hitIDs(search(t, s, "systemctl", 0)); !slices.Equal(got, []string{"rb", "ra"}) {
			t.Errorf("store %s: search systemctl = %v, want [rb ra]", name, got)
		}
	})

	ida, err := a.AppendCommand(ctx, store.Command{User: "alice", SessionID: "ra", Command: "uptime"})
	if err != nil {
		t.Fatal(err)
	}
	idb, err := b.AppendCommand(ctx, store.Command{User: "bob", SessionID: "rb", Command: "id"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetCommandExit(ctx, ida, 3); err != nil {
		t.Errorf("b sets the exit status of a's command: %v", err)
	}
	both(a, b, func(s, _ store.Store, name string) {
		cmds, err := s.ListCommands(ctx, store.CommandFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(cmds) != 2 || cmds[0].ID != ida || cmds[1].ID != idb || cmds[0].ExitStatus == nil || *cmds[0].ExitStatus != 3 {
			t.Errorf("store %s: ListCommands = %+v, want a's (exit 3) then b's", name, cmds)
		}
	})
}

// testSharedInterruptOwnRecordings: a gateway restarting on the shared
// database (a, gateway "gw-a") closes the recordings it left active, not
// the ones the other gateway (b, "gw-b") is still writing.
func testSharedInterruptOwnRecordings(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	createRecording(t, a, store.Recording{ID: "ra", Gateway: "gw-a", StartedAt: time0})
	createRecording(t, b, store.Recording{ID: "rb", Gateway: "gw-b", StartedAt: time0.Add(1)})
	got, err := a.InterruptActive(ctx, "gw-a", time0.Add(time.Minute))
	if err != nil {
		t.Fatalf("a: InterruptActive: %v", err)
	}
	if ids := recordingIDs(got); !slices.Equal(ids, []string{"ra"}) {
		t.Errorf("a: InterruptActive(gw-a) = %v, want [ra]", ids)
	}
	both(a, b, func(s, _ store.Store, name string) {
		if r := getRecording(t, s, "rb"); r.State != store.RecordingActive || r.Gateway != "gw-b" {
			t.Errorf("store %s: b's recording after a interrupted its own: %+v, want active, gw-b's", name, r)
		}
		if r := getRecording(t, s, "ra"); r.State != store.RecordingInterrupted || r.Gateway != "gw-a" {
			t.Errorf("store %s: a's recording: %+v, want interrupted, gw-a's", name, r)
		}
	})
	// b can still finish its recording as usual.
	if err := b.FinishRecording(ctx, "rb", store.RecordingEnded, time0.Add(2*time.Minute), 1, "h"); err != nil {
		t.Errorf("b: FinishRecording: %v", err)
	}
}
