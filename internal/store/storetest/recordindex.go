package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// testRecordingIndex: a new recording is indexed live; the backlog holds
// one gateway's ended recordings whose index is live or partial, oldest
// first; the state and offset are stored; DeleteRecordingText removes a
// recording's text from search.
func testRecordingIndex(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b", "c", "d", "other"} {
		gw := "gw1"
		if id == "other" {
			gw = "gw2"
		}
		createRecording(t, s, store.Recording{ID: id, User: "u", Target: "t", StartedAt: base.Add(time.Duration(i) * time.Minute), Gateway: gw})
	}
	if r := getRecording(t, s, "a"); r.IndexState != store.IndexLive || r.IndexOffset != 0 {
		t.Errorf("new recording: index %q at %d, want live at 0", r.IndexState, r.IndexOffset)
	}
	for _, id := range []string{"a", "b", "c", "other"} {
		if err := s.FinishRecording(ctx, id, store.RecordingEnded, base.Add(time.Hour), 1, "00"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetRecordingIndex(ctx, "b", store.IndexComplete, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRecordingIndex(ctx, "c", store.IndexPartial, 4096); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRecordingIndex(ctx, "nope", store.IndexPartial, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetRecordingIndex of a missing recording: %v, want ErrNotFound", err)
	}
	if err := s.SetRecordingIndex(ctx, "a", "bogus", 0); err == nil {
		t.Error("SetRecordingIndex took an unknown state")
	}
	backlog, err := s.IndexBacklog(ctx, "gw1", 10)
	if err != nil {
		t.Fatal(err)
	}
	// a (ended, live), c (partial): not b (complete), d (active), other (gw2).
	if got := fmt.Sprint(recordingIDs(backlog)); got != "[a c]" {
		t.Errorf("IndexBacklog = %s, want [a c]", got)
	}
	if len(backlog) == 2 && (backlog[1].IndexState != store.IndexPartial || backlog[1].IndexOffset != 4096) {
		t.Errorf("backlog entry c: %q at %d", backlog[1].IndexState, backlog[1].IndexOffset)
	}
	indexText(t, s, store.TextChunk{RecordingID: "a", Offset: 1, Text: "zebracorn 1234567"})
	if len(search(t, s, "1234567", 10)) != 1 {
		t.Fatal("indexed text not found")
	}
	if err := s.DeleteRecordingText(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if hits := search(t, s, "zebracorn", 10); len(hits) != 0 {
		t.Errorf("after DeleteRecordingText: %v", hits)
	}
}

// testCheckWritable: an open store takes writes.
func testCheckWritable(t *testing.T, s store.Store) {
	if err := s.CheckWritable(context.Background()); err != nil {
		t.Errorf("CheckWritable on an open store: %v", err)
	}
}
