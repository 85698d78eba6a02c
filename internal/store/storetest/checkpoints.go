package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

func testAuditCheckpoints(t *testing.T, s store.Store) {
	ctx := context.Background()
	if id, hash, err := s.AuditHead(ctx); err != nil || id != 0 || hash != "" {
		t.Fatalf("AuditHead of an empty trail = %d, %q, %v; want 0, \"\"", id, hash, err)
	}
	if _, err := s.LatestCheckpoint(ctx, store.CheckpointHead); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LatestCheckpoint with none = %v; want ErrNotFound", err)
	}
	var last int64
	for i := range 3 {
		id, err := s.AppendAudit(ctx, store.AuditEvent{Type: "x", Message: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		last = id
	}
	evs := listAudit(t, s, store.AuditFilter{})
	id, hash, err := s.AuditHead(ctx)
	if err != nil || id != last || hash != evs[len(evs)-1].Hash {
		t.Fatalf("AuditHead = %d, %q, %v; want %d, %q", id, hash, err, last, evs[len(evs)-1].Hash)
	}
	at := time.Date(2026, 7, 1, 0, 0, 0, 123456789, time.UTC)
	cps := []store.AuditCheckpoint{
		{Kind: store.CheckpointHead, EventID: 2, Hash: "h2", Time: at, Gateway: "gw-a", Signature: "sig2"},
		{Kind: store.CheckpointHead, EventID: 3, Hash: "h3", Time: at.Add(time.Second), Gateway: "gw-b", Signature: "sig3"},
		// Appended later for an older event (a gateway that was behind):
		// the latest by event is still event 3's.
		{Kind: store.CheckpointHead, EventID: 1, Hash: "h1", Time: at.Add(2 * time.Second), Gateway: "gw-a", Signature: "sig1"},
		{Kind: store.CheckpointRetention, EventID: 1, Hash: "r", Time: at, Signature: "sigr"},
	}
	var seqs []int64
	for _, cp := range cps {
		seq, err := s.AppendCheckpoint(ctx, cp)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if !slices.IsSorted(seqs) || seqs[0] == seqs[1] {
		t.Errorf("checkpoint seqs %v do not grow", seqs)
	}
	got, err := s.LatestCheckpoint(ctx, store.CheckpointHead)
	want := cps[1]
	want.Seq = seqs[1]
	if err != nil || got != want {
		t.Errorf("LatestCheckpoint(head) = %+v, %v; want %+v", got, err, want)
	}
	if got, err := s.LatestCheckpoint(ctx, store.CheckpointRetention); err != nil || got.Hash != "r" || got.Seq != seqs[3] {
		t.Errorf("LatestCheckpoint(retention) = %+v, %v", got, err)
	}
	if _, err := s.AppendCheckpoint(ctx, store.AuditCheckpoint{Kind: store.CheckpointHead, EventID: 1}); err == nil {
		t.Error("AppendCheckpoint without a signature succeeded")
	}

	// One audit key for every gateway: the first to create it wins.
	if _, err := s.GetAuditKey(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAuditKey before one is made = %v; want ErrNotFound", err)
	}
	k := store.AuditKey{PublicKey: "ssh-ed25519 AAAA first", Sealed: []byte{0, 1, 2, 0xff}, CreatedAt: at}
	if err := s.CreateAuditKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAuditKey(ctx, store.AuditKey{PublicKey: "ssh-ed25519 AAAA second", Sealed: []byte{9}}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second CreateAuditKey = %v; want ErrConflict", err)
	}
	if got, err := s.GetAuditKey(ctx); err != nil || got.PublicKey != k.PublicKey || !bytes.Equal(got.Sealed, k.Sealed) || !got.CreatedAt.Equal(at) {
		t.Errorf("GetAuditKey = %+v, %v; want %+v", got, err, k)
	}
}

func testPruneAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	sealed := 0
	seal := func(first int64, anchor string) (store.AuditCheckpoint, error) {
		sealed++
		return store.AuditCheckpoint{Kind: store.CheckpointRetention, EventID: first, Hash: anchor,
			Time: time.Now(), Signature: "sig"}, nil
	}
	if n, _, err := s.PruneAudit(ctx, time.Now(), seal); err != nil || n != 0 || sealed != 0 {
		t.Fatalf("PruneAudit of an empty trail = %d, %v (sealed %d); want 0, not sealed", n, err, sealed)
	}
	base := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	var appended []int64
	for i, sec := range []int{0, 1, 2, 5, 3, 6} {
		id, err := s.AppendAudit(ctx, store.AuditEvent{Time: at(sec), Type: "x", Message: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		appended = append(appended, id)
	}
	all := listAudit(t, s, store.AuditFilter{})
	n, cp, err := s.PruneAudit(ctx, at(4), seal)
	if err != nil || n != 3 {
		t.Fatalf("PruneAudit(at 4) = %d, %v; want 3", n, err)
	}
	if cp.Seq == 0 || cp.EventID != appended[3] || cp.Hash != all[2].Hash {
		t.Errorf("retention checkpoint %+v; want event %d continuing from %q", cp, appended[3], all[2].Hash)
	}
	if got, err := s.LatestCheckpoint(ctx, store.CheckpointRetention); err != nil || got.Seq != cp.Seq {
		t.Errorf("stored retention checkpoint = %+v, %v; want seq %d", got, err, cp.Seq)
	}
	checkChain(t, listAudit(t, s, store.AuditFilter{}), all[2].Hash)

	// After every event: all go but the newest, which the chain goes on from.
	if n, cp, err = s.PruneAudit(ctx, at(100), seal); err != nil || n != 2 {
		t.Fatalf("PruneAudit(after all) = %d, %v; want 2", n, err)
	}
	kept := listAudit(t, s, store.AuditFilter{})
	if got := ids(kept); !slices.Equal(got, appended[5:]) {
		t.Fatalf("after pruning all: ids %v, want %v (the newest stays)", got, appended[5:])
	}
	if cp.EventID != appended[5] || cp.Hash != all[4].Hash {
		t.Errorf("retention checkpoint %+v; want event %d continuing from %q", cp, appended[5], all[4].Hash)
	}
	before := sealed
	if n, _, err := s.PruneAudit(ctx, at(100), seal); err != nil || n != 0 || sealed != before {
		t.Errorf("PruneAudit of a one-event trail = %d, %v (sealed again: %v); want 0", n, err, sealed != before)
	}
	next, err := s.AppendAudit(ctx, store.AuditEvent{Type: "x"})
	if err != nil || next != appended[5]+1 {
		t.Errorf("AppendAudit after pruning = %d, %v; want %d", next, err, appended[5]+1)
	}

	// A seal that fails leaves the trail as it was.
	if _, _, err := s.PruneAudit(ctx, at(100), func(int64, string) (store.AuditCheckpoint, error) {
		return store.AuditCheckpoint{}, errors.New("no key")
	}); err == nil {
		t.Error("PruneAudit with a failing seal succeeded")
	}
	if got := ids(listAudit(t, s, store.AuditFilter{})); len(got) != 2 {
		t.Errorf("after a failed prune: ids %v, want 2 events", got)
	}
}

// Audit IDs have no holes and are never handed out twice, even after the
// newest events were removed: verification takes any gap for a removal.
func testAuditIDsDense(t *testing.T, s store.Store) {
	ctx := context.Background()
	var got []int64
	for range 5 {
		id, err := s.AppendAudit(ctx, store.AuditEvent{Type: "x"})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("ids %v have a hole", got)
		}
	}
	// A failed append (an empty type) draws no ID.
	if _, err := s.AppendAudit(ctx, store.AuditEvent{}); err == nil {
		t.Fatal("AppendAudit without a type succeeded")
	}
	if id, err := s.AppendAudit(ctx, store.AuditEvent{Type: "x"}); err != nil || id != got[4]+1 {
		t.Fatalf("after a failed append: id %d, %v; want %d", id, err, got[4]+1)
	}
}
