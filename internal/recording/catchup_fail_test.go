package recording

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// TestCatchUpFailedStates: a recording whose file is gone, or is not a
// recording, is stored as failed (not retried for ever); one with a
// damaged line in the middle has what came before indexed, then failed.
func TestCatchUpFailedStates(t *testing.T) {
	ctx := context.Background()
	m, st, _ := newTestManager(t)
	for _, id := range []string{"gone", "garbage", "damaged"} {
		if err := st.CreateRecording(ctx, store.Recording{ID: id}); err != nil {
			t.Fatal(err)
		}
		if err := st.FinishRecording(ctx, id, store.RecordingEnded, m.now(), 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	write := func(id, content string) {
		if err := os.WriteFile(filepath.Join(m.Dir(), id+".cast"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("garbage", "not a recording\n")
	write("damaged", `{"version":2,"width":80,"height":24}`+"\n"+
		`[0.1,"o","before the damage\r\n"]`+"\n"+`[0.2,"o",`+"\n"+`[0.3,"o","after the damage\r\n"]`+"\n")
	for _, id := range []string{"gone", "garbage", "damaged"} {
		rec, _ := st.GetRecording(ctx, id)
		if err := m.IndexFile(ctx, rec); err != nil {
			t.Fatalf("IndexFile(%s): %v", id, err)
		}
		if rec, _ := st.GetRecording(ctx, id); rec.IndexState != store.IndexFailed {
			t.Errorf("%s: index state %q, want failed", id, rec.IndexState)
		}
	}
	var text []string
	for _, c := range st.chunks {
		text = append(text, c.Text)
	}
	all := strings.Join(text, "\n")
	if !strings.Contains(all, "before the damage") || strings.Contains(all, "after the damage") {
		t.Errorf("indexed text of the damaged file: %q", all)
	}
	if backlog, _ := st.IndexBacklog(ctx, "", 10); len(backlog) != 0 {
		t.Errorf("failed recordings still in the backlog: %v", backlog)
	}
}

// TestCatchUpRest: while sessions are recorded the catch-up works about
// catchUpShare of the time, never without a pause between batches; with
// none recorded it does not rest.
func TestCatchUpRest(t *testing.T) {
	for _, c := range []struct {
		took time.Duration
		live bool
		want time.Duration
	}{
		{200 * time.Millisecond, false, 0},
		{0, false, 0},
		{0, true, catchUpPause},
		{time.Millisecond, true, catchUpPause},
		{200 * time.Millisecond, true, 1800 * time.Millisecond},
		{2 * time.Second, true, 18 * time.Second},
	} {
		if got := catchUpRest(c.took, c.live); got != c.want {
			t.Errorf("catchUpRest(%v, %v) = %v, want %v", c.took, c.live, got, c.want)
		}
	}
}

// TestRecordingLately: the catch-up counts the gateway as busy while a
// session is recorded and for catchUpQuiet after the last one ended, so
// that back-to-back sessions never leave it at full speed between them.
func TestRecordingLately(t *testing.T) {
	m, _, clk := newTestManager(t)
	if m.recordingLately() {
		t.Fatal("busy before any recording")
	}
	r, err := m.Start(context.Background(), testMeta("lately"))
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if !m.recordingLately() {
		t.Error("not busy while a recording is written")
	}
	if _, _, err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		advance time.Duration
		want    bool
	}{
		{0, true},
		{catchUpQuiet - time.Millisecond, true},
		{time.Millisecond, false},
		{time.Hour, false},
	} {
		clk.Advance(step.advance)
		if got := m.recordingLately(); got != step.want {
			t.Errorf("%v after the end: busy = %v, want %v", m.now().Sub(time.Unix(0, m.lastEnd.Load())), got, step.want)
		}
	}
}

// TestCatchUpRestsBeforeARecording: while sessions are recorded, the
// catch-up rests before the first batch of a recording too (after the last
// batch of the one before), so that recordings ending one after another do
// not each get a batch at full speed; one deleted during the rest is never
// read. (It used to start every recording at once.)
func TestCatchUpRestsBeforeARecording(t *testing.T) {
	ctx := context.Background()
	m, st, _ := newTestManager(t)
	live, err := m.Start(ctx, testMeta("live"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close(ctx)
	endedRecording(t, m, "ended", "searchable words")
	if err := st.SetRecordingIndex(ctx, "ended", store.IndexPartial, 0); err != nil {
		t.Fatal(err)
	}
	before := st.text("ended")
	// The last batch took an hour: the rest is nine.
	p := pacer{took: time.Hour}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.catchUpBacklog(cctx, &p)
	}()
	time.Sleep(200 * time.Millisecond) // long enough for the old code to index it
	cancel()
	<-done
	if got := st.rec(t, "ended").IndexState; got != store.IndexPartial {
		t.Errorf("index state %q while resting, want partial", got)
	}
	if got := st.text("ended"); got != before {
		t.Errorf("text indexed while resting: %q, was %q", got, before)
	}
	// With no session recorded lately it does not rest: indexed at once.
	if _, _, err := live.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m.lastEnd.Store(0)
	m.catchUpBacklog(ctx, &p)
	if got := st.rec(t, "ended").IndexState; got != store.IndexComplete {
		t.Errorf("index state %q after the catch-up, want complete", got)
	}
	if got := st.text("ended"); !strings.Contains(got, "searchable words") {
		t.Errorf("text after the catch-up: %q", got)
	}
}

// TestCatchUpWaitsOutAFlood: while a session floods output (a recorder
// buffered flushSoon before a flush) the catch-up starts no batch at all;
// once no flood has been seen for catchUpFloodQuiet it goes on.
func TestCatchUpWaitsOutAFlood(t *testing.T) {
	ctx := context.Background()
	m, st, clk := newTestManager(t)
	endedRecording(t, m, "ended", "searchable words")
	if err := st.SetRecordingIndex(ctx, "ended", store.IndexPartial, 0); err != nil {
		t.Fatal(err)
	}
	before := st.text("ended")
	flood, err := m.Start(ctx, testMeta("flood"))
	if err != nil {
		t.Fatal(err)
	}
	if m.floodingLately() {
		t.Fatal("flooding before any output")
	}
	flood.Output(make([]byte, flushSoon)) // one flush's worth, no flush
	if !m.floodingLately() {
		t.Fatal("not flooding after flushSoon of output without a flush")
	}
	if _, _, err := flood.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m.lastEnd.Store(0) // not "recorded lately": only the flood holds it
	p := pacer{flooding: m.floodingLately}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.catchUpBacklog(cctx, &p)
	}()
	time.Sleep(3 * catchUpFloodPoll) // long enough to index it, were it not held
	if got := st.text("ended"); got != before {
		t.Fatalf("text indexed during a flood: %q, was %q", got, before)
	}
	clk.Advance(catchUpFloodQuiet)
	<-done
	if m.floodingLately() {
		t.Error("still flooding catchUpFloodQuiet after the last flood")
	}
	if got := st.rec(t, "ended").IndexState; got != store.IndexComplete {
		t.Errorf("index state %q after the flood, want complete", got)
	}
	if got := st.text("ended"); !strings.Contains(got, "searchable words") {
		t.Errorf("text after the flood: %q", got)
	}
}

// TestExtractHeldByFloods: the catch-up's reader asks before every event
// whether to go on (it waits while a session floods output) and stops,
// sending nothing, when told to; told to go on, it sends the text.
func TestExtractHeldByFloods(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newTestManager(t)
	endedRecording(t, m, "ended", "searchable words")
	extract := func(wait func() bool) []catchBatch {
		f, err := os.Open(filepath.Join(m.Dir(), "ended.cast"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rd, err := NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		out := make(chan catchBatch, 4)
		extractBatches(ctx, m, "ended", rd, rd.Header(), out, wait)
		close(out)
		var bs []catchBatch
		for b := range out {
			bs = append(bs, b)
		}
		return bs
	}
	asked := 0
	if bs := extract(func() bool { asked++; return false }); len(bs) != 0 || asked != 1 {
		t.Errorf("held: %d batches sent, asked %d times", len(bs), asked)
	}
	bs := extract(func() bool { return true })
	if len(bs) != 1 || bs[0].state != store.IndexComplete || len(bs[0].chunks) == 0 ||
		!strings.Contains(bs[0].chunks[0].Text, "searchable words") {
		t.Errorf("not held: %+v", bs)
	}
}

// endedRecording records one line of text as recording id and closes it.
func endedRecording(t *testing.T, m *Manager, id, line string) {
	t.Helper()
	ctx := context.Background()
	r, err := m.Start(ctx, testMeta(id))
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte(line + "\r\n"))
	if _, _, err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
