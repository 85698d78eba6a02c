package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

var hexHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// checkChain checks that evs (a listing from the first event kept on) form
// one chain: each Hash recomputes from the event as listed, each PrevHash
// is the previous Hash, the first PrevHash is first.
func checkChain(t *testing.T, evs []store.AuditEvent, first string) {
	t.Helper()
	prev := first
	seen := map[string]int64{}
	for i, ev := range evs {
		if !hexHash.MatchString(ev.Hash) {
			t.Errorf("event %d (id %d): Hash %q is not hex SHA-256", i, ev.ID, ev.Hash)
		}
		if ev.PrevHash != prev {
			t.Errorf("event %d (id %d): PrevHash %q, want the previous event's Hash %q", i, ev.ID, ev.PrevHash, prev)
		}
		if got := store.HashEvent(ev.PrevHash, ev); got != ev.Hash {
			t.Errorf("event %d (id %d, %s, detail %#v): Hash %s, but HashEvent over the listed event gives %s",
				i, ev.ID, ev.Type, ev.Detail, ev.Hash, got)
		}
		if id, dup := seen[ev.Hash]; dup {
			t.Errorf("events %d and %d have the same hash", id, ev.ID)
		}
		seen[ev.Hash] = ev.ID
		prev = ev.Hash
	}
}

// tagged has its JSON fields out of alphabetical order: it encodes as
// {"z":..,"a":..} but reads back as a map, which encodes sorted.
type tagged struct {
	Z int    `json:"z"`
	A string `json:"a"`
	N *int   `json:"n"`
}

func testAuditChain(t *testing.T, s store.Store) {
	ctx := context.Background()
	seven := 7
	base := time.Date(2026, 6, 1, 8, 0, 0, 999999999, time.FixedZone("X", -3*3600))
	details := []map[string]any{
		nil,
		{},
		{"n": 3, "f": 3.0, "neg": -1, "zero": 0, "negzero": math.Copysign(0, -1)},
		{"big": int64(1)<<60 + 1, "max": uint64(math.MaxUint64), "min": int64(math.MinInt64)},
		{"f32": float32(0.1), "tiny": 1e-7, "huge": 1e21, "third": 1.0 / 3},
		{"nested": map[string]any{"b": 1, "a": map[string]any{"y": nil, "x": []any{}}}},
		{"nil": nil, "nilslice": []string(nil), "emptyslice": []string{}, "nilmap": map[string]string(nil), "emptymap": map[string]int{}},
		{"struct": tagged{Z: 1, A: "a"}, "ptr": &seven, "nilptr": (*int)(nil)},
		{"raw": json.RawMessage(`{ "z" : 1, "a" : [ 1 , 2.50 ] }`), "num": json.Number("1.50")},
		{"invalid utf8": "a\xffb", "nul": "a\x00b", "html": "<a href='x'>&</a>", "sep": "line\u2028sep"},
		{"bytes": []byte{0, 1, 0xff}, "time": time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)},
		{"unicode": "ünï©ødé 😀", "keys": map[string]int{"é": 1, "e": 2, "E": 3, "": 4}},
		{"bools": []bool{true, false}, "mixed": []any{1, "a", nil, true, map[string]any{}}},
		{"deep": map[string]any{"a": map[string]any{"b": map[string]any{"c": []any{[]any{[]any{1}}}}}}},
		{"exit": 0},
		{"exit": 255, "signal": "KILL"},
		{"path": `C:\dir\file`, "quote": `"`, "ctl": "\t\n\r\x01"},
		{"k": ""},
		{"emptystring key": map[string]any{"": ""}},
		{"last": true},
	}
	var want []store.AuditEvent
	for i, d := range details {
		ev := store.AuditEvent{
			Time: base.Add(time.Duration(i) * time.Millisecond), Type: fmt.Sprint("test.e", i), Outcome: "info",
			User: "alice", Source: "192.0.2.1:22", Target: "db1", Account: "root", SessionID: fmt.Sprint("s", i%3),
			Policy: "p", Message: fmt.Sprint("event ", i), Detail: d,
			PrevHash: "ignored", Hash: "ignored",
		}
		if i == 9 {
			// Text the store cleans: it must hash what it stores.
			ev.User, ev.Message = "bad\xffuser", "nul\x00message"
		}
		id, err := s.AppendAudit(ctx, ev)
		if err != nil {
			t.Fatalf("AppendAudit %d: %v", i, err)
		}
		ev.ID = id
		want = append(want, ev)
	}
	evs := listAudit(t, s, store.AuditFilter{})
	if len(evs) != len(details) {
		t.Fatalf("ListAudit: %d events, want %d", len(evs), len(details))
	}
	checkChain(t, evs, "")
	for i, ev := range evs {
		norm, _, err := store.NormalizeDetail(want[i].Detail)
		if err != nil {
			t.Fatal(err)
		}
		if len(norm) != 0 || len(ev.Detail) != 0 {
			if !reflect.DeepEqual(ev.Detail, norm) {
				t.Errorf("event %d: Detail %#v, want the normalized %#v", i, ev.Detail, norm)
			}
		}
	}
	if evs[9].User != "bad\uFFFDuser" || evs[9].Message != "nul\uFFFDmessage" {
		t.Errorf("cleaned text: User %q Message %q, want U+FFFD for the bad byte and the NUL", evs[9].User, evs[9].Message)
	}
	// A filtered listing and a page carry the same hashes.
	some := listAudit(t, s, store.AuditFilter{SessionID: "s1"})
	for _, ev := range some {
		if !hashOf(evs, ev.ID, ev.Hash) {
			t.Errorf("filtered listing: event %d has hash %s, unlike the full listing", ev.ID, ev.Hash)
		}
		if store.HashEvent(ev.PrevHash, ev) != ev.Hash {
			t.Errorf("filtered listing: event %d does not recompute", ev.ID)
		}
	}
	// The next append chains onto the last.
	id, err := s.AppendAudit(ctx, store.AuditEvent{Type: "test.next"})
	if err != nil {
		t.Fatal(err)
	}
	next := listAudit(t, s, store.AuditFilter{AfterID: id - 1})
	if len(next) != 1 || next[0].PrevHash != evs[len(evs)-1].Hash {
		t.Errorf("next event: %+v, want PrevHash %s", next, evs[len(evs)-1].Hash)
	}
}

// hashOf reports whether the event with id in evs has hash h.
func hashOf(evs []store.AuditEvent, id int64, h string) bool {
	for _, ev := range evs {
		if ev.ID == id {
			return ev.Hash == h
		}
	}
	return false
}

func testAuditChainConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const goroutines, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if _, err := s.AppendAudit(ctx, store.AuditEvent{
					Type: "session.data", SessionID: fmt.Sprint("g", g), Detail: map[string]any{"i": i, "g": g},
				}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	evs := listAudit(t, s, store.AuditFilter{})
	if len(evs) != goroutines*each {
		t.Fatalf("ListAudit: %d events, want %d", len(evs), goroutines*each)
	}
	checkChain(t, evs, "")
}

func testDeleteAuditBefore(t *testing.T, s store.Store) {
	ctx := context.Background()
	if n, err := s.DeleteAuditBefore(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("DeleteAuditBefore on an empty trail = %d, %v; want 0", n, err)
	}
	base := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	// Event 4's time is older than event 3's (a clock stepped back).
	secs := []int{0, 1, 2, 5, 3, 6, 7, 8}
	var appended []int64
	for i, sec := range secs {
		id, err := s.AppendAudit(ctx, store.AuditEvent{Time: at(sec), Type: "x", Message: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		appended = append(appended, id)
	}
	all := listAudit(t, s, store.AuditFilter{})

	// Before at(4): events 0..2 go; event 3 (at 5) is the first to stay,
	// and event 4 (at 3) stays behind it.
	n, err := s.DeleteAuditBefore(ctx, at(4))
	if err != nil || n != 3 {
		t.Fatalf("DeleteAuditBefore(at 4) = %d, %v; want 3", n, err)
	}
	kept := listAudit(t, s, store.AuditFilter{})
	if got := ids(kept); !slices.Equal(got, appended[3:]) {
		t.Fatalf("after DeleteAuditBefore: ids %v, want %v", got, appended[3:])
	}
	checkChain(t, kept, all[2].Hash)

	if n, err := s.DeleteAuditBefore(ctx, at(4)); err != nil || n != 0 {
		t.Errorf("DeleteAuditBefore again = %d, %v; want 0", n, err)
	}
	// A time between kept events.
	if n, err := s.DeleteAuditBefore(ctx, at(7)); err != nil || n != 3 {
		t.Errorf("DeleteAuditBefore(at 7) = %d, %v; want 3", n, err)
	}
	id, err := s.AppendAudit(ctx, store.AuditEvent{Time: at(9), Type: "x"})
	if err != nil {
		t.Fatal(err)
	}
	kept = listAudit(t, s, store.AuditFilter{})
	if got := ids(kept); !slices.Equal(got, append(appended[6:], id)) {
		t.Fatalf("after the second delete and an append: ids %v, want %v", got, append(appended[6:], id))
	}
	checkChain(t, kept, all[5].Hash)

	// A time after every event removes them all; ids still grow.
	if n, err := s.DeleteAuditBefore(ctx, at(100)); err != nil || n != 3 {
		t.Errorf("DeleteAuditBefore(after all) = %d, %v; want 3", n, err)
	}
	if left := listAudit(t, s, store.AuditFilter{}); len(left) != 0 {
		t.Errorf("after deleting all: %d events left", len(left))
	}
	if next, err := s.AppendAudit(ctx, store.AuditEvent{Type: "x"}); err != nil || next <= id {
		t.Errorf("AppendAudit after deleting all = %d, %v; want an id above %d", next, err, id)
	}
}
