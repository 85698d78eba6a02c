package recording

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// record runs one recording: Start, the steps, Close. It returns the file's
// header and events.
func record(t *testing.T, m *Manager, clk *fakeClock, meta Meta, steps func(r *Recorder)) (Header, []Event) {
	t.Helper()
	r, err := m.Start(context.Background(), meta)
	if err != nil {
		t.Fatal(err)
	}
	steps(r)
	if _, _, err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return readCast(t, filepath.Join(m.Dir(), meta.ID+".cast"))
}

func TestRecordRoundTrip(t *testing.T) {
	m, st, clk := newTestManager(t)
	meta := testMeta("sess-1")
	meta.RecordInput = true
	r, err := m.Start(context.Background(), meta)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Active(); len(got) != 1 || got[0] != "sess-1" {
		t.Fatalf("Active = %v", got)
	}
	if rec := st.rec(t, "sess-1"); rec.State != store.RecordingActive || rec.User != "alice" || rec.Account != "root" {
		t.Fatalf("stored %+v", rec)
	}
	r.Output([]byte("$ "))
	clk.Advance(1500 * time.Millisecond)
	r.Input([]byte("ls\r"))
	clk.Advance(time.Millisecond)
	r.Output([]byte("ls\r\nfile\r\n"))
	flushSync(t, r) // a flush in the middle changes nothing
	clk.Advance(2 * time.Second)
	r.Resize(120, 40)
	r.Output([]byte("$ "))
	r.Output(nil) // nothing
	size, sum, err := r.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	if s2, sum2, err2 := r.Close(context.Background()); s2 != size || sum2 != sum || err2 != nil {
		t.Errorf("second Close = %d %s %v", s2, sum2, err2)
	}
	r.Output([]byte("after close")) // no-op
	if len(m.Active()) != 0 {
		t.Errorf("Active after Close = %v", m.Active())
	}

	path := filepath.Join(m.Dir(), "sess-1.cast")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	h := sha256.Sum256(raw)
	if int64(len(raw)) != size || hex.EncodeToString(h[:]) != sum {
		t.Errorf("Close returned %d %s, file is %d %x", size, sum, len(raw), h)
	}
	rec := st.rec(t, "sess-1")
	if rec.State != store.RecordingEnded || rec.Size != size || rec.SHA256 != sum || rec.EndedAt.IsZero() {
		t.Errorf("stored %+v", rec)
	}

	hdr, evs := readCast(t, path)
	if hdr.Width != 80 || hdr.Height != 24 || hdr.Portcullis["session"] != "sess-1" || hdr.Timestamp != clk.t.Add(-3501*time.Millisecond).Unix() {
		t.Errorf("header %+v", hdr)
	}
	want := []Event{
		{0, "o", "$ "},
		{1.5, "i", "ls\r"},
		{1.501, "o", "ls\r\nfile\r\n"},
		{3.501, "r", "120x40"},
		{3.501, "o", "$ "},
	}
	if fmt.Sprint(evs) != fmt.Sprint(want) {
		t.Errorf("events\n got %v\nwant %v", evs, want)
	}
}

func TestInputNotRecordedByDefault(t *testing.T) {
	m, _, clk := newTestManager(t)
	_, evs := record(t, m, clk, testMeta("s"), func(r *Recorder) {
		r.Input([]byte("secret\r"))
		r.Output([]byte("ok"))
	})
	if len(evs) != 1 || evs[0].Type != "o" {
		t.Errorf("events %v", evs)
	}
}

func TestNilRecorder(t *testing.T) {
	var r *Recorder
	r.Output([]byte("x"))
	r.Input([]byte("x"))
	r.Resize(1, 1)
	if _, _, err := r.Close(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestStartErrors(t *testing.T) {
	m, st, _ := newTestManager(t)
	for _, id := range []string{"", "../x", "a/b", ".hidden", "a b", strings.Repeat("x", 200)} {
		if _, err := m.Start(context.Background(), testMeta(id)); err == nil {
			t.Errorf("Start(%q) succeeded", id)
		}
	}
	r, err := m.Start(context.Background(), testMeta("dup"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	if _, err := m.Start(context.Background(), testMeta("dup")); err == nil {
		t.Error("second Start with the same id succeeded")
	}
	// A store failure leaves no file behind.
	st.mu.Lock()
	st.recs["taken"] = store.Recording{ID: "taken"}
	st.mu.Unlock()
	if _, err := m.Start(context.Background(), testMeta("taken")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Start over a stored id: %v", err)
	}
	if _, err := os.Stat(filepath.Join(m.Dir(), "taken.cast")); !os.IsNotExist(err) {
		t.Errorf("file left after a failed Start: %v", err)
	}
	if got := m.Active(); len(got) != 1 {
		t.Errorf("Active = %v", got)
	}
}

// TestUTF8Split feeds text split at every byte position of multi-byte
// characters, and invalid bytes, through Output.
func TestUTF8Split(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"euro split 1+2", []string{"a\xe2", "\x82\xacb"}, "a€b"},
		{"euro split 2+1", []string{"a\xe2\x82", "\xacb"}, "a€b"},
		{"euro split 1+1+1", []string{"\xe2", "\x82", "\xac"}, "€"},
		{"emoji split 3+1", []string{"x\xf0\x9f\x98", "\x80y"}, "x😀y"},
		{"emoji in 4", []string{"\xf0", "\x9f", "\x98", "\x80"}, "😀"},
		{"invalid byte", []string{"a\xffb"}, "a\ufffdb"},
		{"latin-1", []string{"caf\xe9 ok"}, "caf\ufffd ok"},
		{"lead then ascii", []string{"a\xe2", "bc"}, "a\ufffdbc"},
		{"truncated at end", []string{"ok\xf0\x9f"}, "ok\ufffd"},
		{"stray continuation", []string{"\x80\x80"}, "\ufffd\ufffd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, clk := newTestManager(t)
			_, evs := record(t, m, clk, testMeta("s"), func(r *Recorder) {
				for _, c := range tt.chunks {
					r.Output([]byte(c))
					clk.Advance(time.Millisecond)
				}
			})
			if got := outputOf(evs, "o"); got != tt.want {
				t.Errorf("recorded %q, want %q", got, tt.want)
			}
		})
	}
}

// TestEventsBounded: a huge Output becomes events of at most maxEventData.
func TestEventsBounded(t *testing.T) {
	m, _, clk := newTestManager(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), (3*maxEventData+100)/16)
	_, evs := record(t, m, clk, testMeta("s"), func(r *Recorder) { r.Output(big) })
	if len(evs) != 4 {
		t.Errorf("%d events, want 4", len(evs))
	}
	if outputOf(evs, "o") != string(big) {
		t.Error("output differs")
	}
}

func TestBinaryBurst(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int, ascii bool) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
			if ascii {
				b[i] &= 0x7f
			}
		}
		return b
	}
	const total = 10 << 20
	tests := []struct {
		name  string
		ascii bool // random bytes below 0x80 (with NULs): the kept parts can be compared exactly
	}{
		{"random bytes", false},
		{"random ascii", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, st, clk := newTestManager(t)
			data := random(total, tt.ascii)
			var size int64
			_, evs := record(t, m, clk, testMeta("s"), func(r *Recorder) {
				r.Output([]byte("$ cat /bin/thing\r\n"))
				clk.Advance(100 * time.Millisecond)
				for off := 0; off < total; off += 32 << 10 {
					r.Output(data[off : off+32<<10])
					clk.Advance(time.Millisecond)
					if off%(1<<20) == 0 {
						flushSync(t, r)
					}
				}
				clk.Advance(2 * time.Second)
				r.Output([]byte("$ echo done\r\ndone\r\n"))
			})
			size = st.rec(t, "s").Size
			if size > total/2 {
				t.Errorf("recording is %d bytes for %d of binary output", size, total)
			}
			var before, after strings.Builder
			marker := ""
			for _, e := range evs {
				switch {
				case strings.Contains(e.Data, "[portcullis:"):
					marker = e.Data
				case marker == "":
					before.WriteString(e.Data)
				default:
					after.WriteString(e.Data)
				}
			}
			wantMarker := fmt.Sprintf("\r\n[portcullis: %d bytes of binary output not recorded]\r\n", total-2*burstKeep)
			if marker != wantMarker {
				t.Fatalf("marker %q, want %q", marker, wantMarker)
			}
			if !strings.HasPrefix(before.String(), "$ cat /bin/thing\r\n") || !strings.HasSuffix(after.String(), "$ echo done\r\ndone\r\n") {
				t.Error("text around the burst missing")
			}
			if tt.ascii {
				if got, want := before.String(), "$ cat /bin/thing\r\n"+string(data[:burstKeep]); got != want {
					t.Errorf("first MiB: got %d bytes, want %d", len(got), len(want))
				}
				if got, want := after.String(), string(data[total-burstKeep:])+"$ echo done\r\ndone\r\n"; got != want {
					t.Errorf("last MiB: got %d bytes, want %d", len(got), len(want))
				}
			} else {
				// Invalid UTF-8 is replaced, so compare lengths in runes
				// roughly: a MiB of input is about a MiB of runes.
				n := len([]rune(before.String()))
				if n < burstKeep*9/10 || n > burstKeep*11/10 {
					t.Errorf("first part is %d runes, want about %d", n, burstKeep)
				}
			}
			// Binary is not indexed; the text around it is.
			if txt := st.text("s"); !strings.Contains(txt, "cat /bin/thing") || !strings.Contains(txt, "echo done") || len(txt) > 4096 {
				t.Errorf("indexed %d bytes: %.200q", len(txt), txt)
			}
		})
	}
}

// TestBinaryBurstShort: a burst under 2 MiB is recorded whole, without a
// marker; a burst ends at a pause.
func TestBinaryBurstShort(t *testing.T) {
	m, _, clk := newTestManager(t)
	bin := bytes.Repeat([]byte{0, 1, 2, 'a'}, 300<<10/4)
	_, evs := record(t, m, clk, testMeta("s"), func(r *Recorder) {
		for range 5 { // 1.5 MiB
			r.Output(bin)
			clk.Advance(time.Millisecond)
		}
		r.Resize(100, 30) // held behind the tail
		r.Output([]byte("prompt$ "))
	})
	got := outputOf(evs, "o")
	if strings.Contains(got, "portcullis:") {
		t.Error("marker in a short burst")
	}
	if want := strings.Repeat(string(bin), 5) + "prompt$ "; got != want {
		t.Errorf("output %d bytes, want %d", len(got), len(want))
	}
	var last float64
	for _, e := range evs {
		if e.Time < last {
			t.Fatalf("events out of time order: %v after %v", e.Time, last)
		}
		last = e.Time
	}
	if evs[len(evs)-2].Type != "r" {
		t.Errorf("resize not in order: %v", evs[len(evs)-2])
	}
}

func TestIndexText(t *testing.T) {
	m, st, clk := newTestManager(t)
	record(t, m, clk, testMeta("s"), func(r *Recorder) {
		r.Output([]byte("$ systemctl restart nginx\r\n"))
		clk.Advance(3 * time.Second)
		for i := range 50 {
			r.Output(fmt.Appendf(nil, "line %d\r\n", i))
		}
		flushSync(t, r)
	})
	chunks := st.chunksOf("s")
	if len(chunks) < 3 {
		t.Fatalf("%d chunks: %v", len(chunks), chunks)
	}
	if !strings.HasPrefix(chunks[0].Text, "$ systemctl restart nginx\nline 0") || chunks[0].Offset != 0 {
		t.Errorf("first chunk %+v", chunks[0])
	}
	for _, c := range chunks {
		if n := strings.Count(c.Text, "\n") + 1; n > chunkLines {
			t.Errorf("chunk of %d lines", n)
		}
	}
	if last := chunks[len(chunks)-1]; !strings.Contains(last.Text, "line 49") || last.Offset != 3 {
		t.Errorf("last chunk %+v", last)
	}
}

// TestIndexFlood: text far over the index budget is recorded in full but
// indexed only at its start and end.
func TestIndexFlood(t *testing.T) {
	m, st, clk := newTestManager(t)
	var all bytes.Buffer
	_, evs := record(t, m, clk, testMeta("s"), func(r *Recorder) {
		for i := range 200_000 {
			fmt.Fprintf(&all, "row %06d\r\n", i)
			if all.Len() >= 32<<10 {
				r.Output(all.Bytes())
				all.Reset()
				clk.Advance(time.Millisecond)
			}
			if i%20000 == 0 {
				flushSync(t, r)
			}
		}
		r.Output(all.Bytes())
		flushSync(t, r)
		clk.Advance(5 * time.Second)
		flushSync(t, r) // the flood is over: its tail is indexed
		r.Output([]byte("$ after\r\n"))
	})
	if got := outputOf(evs, "o"); !strings.Contains(got, "row 100000\r\n") || !strings.HasSuffix(got, "row 199999\r\n$ after\r\n") {
		t.Error("recording is not complete")
	}
	txt := st.text("s")
	if !strings.Contains(txt, "row 000000") || !strings.Contains(txt, "row 199998") || !strings.Contains(txt, "$ after") {
		t.Errorf("start or end of the flood not indexed")
	}
	if strings.Contains(txt, "row 100000") {
		t.Error("middle of the flood indexed")
	}
	if len(txt) > indexBurst+2*floodTail+64<<10 {
		t.Errorf("indexed %d bytes", len(txt))
	}
}

// TestIndexFloodInOneFlush: a flush holding more output than the budget
// left is indexed only at its head (whole lines, floodTail bytes) and,
// once the flood calms, its tail; a flood going on after that tail gets no
// second head. The recording's index is partial, so the catch-up indexes
// the whole file once it ends.
func TestIndexFloodInOneFlush(t *testing.T) {
	m, st, clk := newTestManager(t)
	rows := func(from, to int) []byte {
		var b bytes.Buffer
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "row %06d\r\n", i)
		}
		return b.Bytes()
	}
	out := func(r *Recorder, p []byte) {
		for len(p) > 0 {
			n := min(len(p), 32<<10)
			r.Output(p[:n])
			p = p[n:]
		}
	}
	record(t, m, clk, testMeta("s"), func(r *Recorder) {
		out(r, rows(0, 50_000)) // 600 KB, over the 256 KiB budget
		flushSync(t, r)
		clk.Advance(5 * time.Second)
		// The budget is back: the tail is indexed, but the flood goes
		// on in the same flush (no new head).
		out(r, rows(50_000, 100_000))
		flushSync(t, r)
	}) // Close indexes the last tail
	txt := st.text("s")
	if !strings.Contains(txt, "row 000000") || !strings.Contains(txt, "row 049999") || !strings.Contains(txt, "row 099999") {
		t.Error("head or tails of the flood not indexed")
	}
	for _, w := range []string{"row 025000", "row 050000", "row 075000"} {
		if strings.Contains(txt, w) {
			t.Errorf("%s indexed live", w)
		}
	}
	if len(txt) > 3*floodTail {
		t.Errorf("indexed %d bytes live", len(txt))
	}
	if got := st.rec(t, "s").IndexState; got != store.IndexPartial {
		t.Errorf("index state %q, want partial", got)
	}
}

func TestRunFlushes(t *testing.T) {
	m, st, _ := newTestManager(t)
	m.now = time.Now
	m.interval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	r, err := m.Start(context.Background(), testMeta("live"))
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("hello\r\nworld\r\n"))
	path := filepath.Join(m.Dir(), "live.cast")
	waitFor(t, func() bool {
		b, _ := os.ReadFile(path)
		return bytes.Contains(b, []byte("world"))
	})
	// The text index is fed while the session runs (a full chunk at once).
	for i := range chunkLines {
		r.Output(fmt.Appendf(nil, "line %d\r\n", i))
	}
	waitFor(t, func() bool { return strings.Contains(st.text("live"), "hello\nworld\nline 0") })
	cancel()
	<-done
	if _, _, err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRunKick(t *testing.T) {
	m, _, _ := newTestManager(t)
	m.now = time.Now
	m.interval = time.Hour // only a kick flushes
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	r, err := m.Start(context.Background(), testMeta("big"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for range flushSoon/len(chunk) + 1 {
		r.Output(chunk)
	}
	path := filepath.Join(m.Dir(), "big.cast")
	waitFor(t, func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() > flushSoon
	})
	r.Output([]byte("tail"))
	cancel()
	<-done // Run's last flush writes the tail
	b, _ := os.ReadFile(path)
	if !bytes.HasSuffix(b, []byte("tail\"]\n")) {
		t.Errorf("last flush missing: ...%q", b[max(0, len(b)-40):])
	}
	r.Close(context.Background())
}

// flushSync does what Run does for one recorder, synchronously.
func flushSync(t *testing.T, r *Recorder) {
	t.Helper()
	chunks, err := r.flush()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.index(context.Background(), chunks); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOverrun: when the flusher does not run, output beyond maxPending is
// left out, marked, and reported.
func TestOverrun(t *testing.T) {
	m, st, clk := newTestManager(t)
	m.maxPending = 8 << 20
	var failures []error
	meta := testMeta("s")
	meta.OnFailure = func(err error) { failures = append(failures, err) }
	r, err := m.Start(context.Background(), meta)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("y"), 1<<20)
	for range m.maxPending/len(chunk) + 3 {
		r.Output(chunk)
	}
	clk.Advance(time.Second)
	r.Output([]byte("later"))
	m.flushAll(make(chan indexBatch, indexQueue))
	if len(failures) != 1 || !strings.Contains(failures[0].Error(), "fell behind") {
		t.Fatalf("failures %v", failures)
	}
	r.Close(context.Background())
	_, evs := readCast(t, filepath.Join(m.Dir(), "s.cast"))
	got := outputOf(evs, "o")
	var lost int
	if i := strings.Index(got, "[portcullis: "); i < 0 {
		t.Fatal("no marker")
	} else if _, err := fmt.Sscanf(got[i:], "[portcullis: %d bytes of output not recorded: the recording fell behind]", &lost); err != nil {
		t.Fatalf("marker: %v", err)
	}
	total := (m.maxPending/len(chunk) + 3) * len(chunk)
	if kept := strings.Count(got, "y") - 1; lost < 3<<20 || kept+lost != total { // "bytes" has a y
		t.Errorf("kept %d and lost %d of %d", kept, lost, total)
	}
	if !strings.HasSuffix(got, "fell behind]\r\nlater") {
		t.Errorf("the marker is not where output was lost: ...%q", got[len(got)-80:])
	}
	if g := r.Gap(); g.Bytes != int64(lost) {
		t.Errorf("gap %+v, want %d bytes", g, lost)
	}
	if rec, err := st.GetRecording(context.Background(), "s"); err != nil || rec.State != store.RecordingIncomplete {
		t.Errorf("stored state %q (%v), want %q", rec.State, err, store.RecordingIncomplete)
	}
}

// TestWriteFailure: a failed write is reported once, the file stays valid,
// and recording resumes with a marker when writing works again.
func TestWriteFailure(t *testing.T) {
	m, st, clk := newTestManager(t)
	var mu sync.Mutex
	var failures []error
	meta := testMeta("s")
	meta.OnFailure = func(err error) {
		mu.Lock()
		failures = append(failures, err)
		mu.Unlock()
	}
	r, err := m.Start(context.Background(), meta)
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("one\r\n"))
	flushSync(t, r)
	good := r.w.f
	ro, err := os.Open(r.path) // writes to it fail
	if err != nil {
		t.Fatal(err)
	}
	r.fmu.Lock()
	r.w.f = ro
	r.fmu.Unlock()
	clk.Advance(time.Second)
	r.Output([]byte("lost\r\n"))
	m.flushAll(make(chan indexBatch, 10))
	r.Output([]byte("lost again\r\n"))
	m.flushAll(make(chan indexBatch, 10))
	mu.Lock()
	if len(failures) != 1 {
		t.Errorf("OnFailure called %d times: %v", len(failures), failures)
	}
	mu.Unlock()
	r.fmu.Lock()
	r.w.f = good
	r.fmu.Unlock()
	ro.Close()
	clk.Advance(time.Second)
	r.Output([]byte("three\r\n"))
	size, sum, err := r.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(r.path)
	h := sha256.Sum256(raw)
	if size != int64(len(raw)) || sum != hex.EncodeToString(h[:]) {
		t.Error("size or hash differ from the file")
	}
	_, evs := readCast(t, r.path)
	got := outputOf(evs, "o")
	if !strings.HasPrefix(got, "one\r\n\r\n[portcullis: 18 bytes of output not recorded: write error:") || !strings.HasSuffix(got, "three\r\n") {
		t.Errorf("recorded %q", got)
	}
	// The recording is incomplete, with its gap, not plainly ended.
	if g := r.Gap(); g != (Gap{Bytes: 18, From: time.Second, To: time.Second}) {
		t.Errorf("gap %+v, want 18 bytes at 1s", g)
	}
	if rec, err := st.GetRecording(context.Background(), "s"); err != nil || rec.State != store.RecordingIncomplete {
		t.Errorf("stored state %q (%v), want %q", rec.State, err, store.RecordingIncomplete)
	}
}

// TestIndexFailureDoesNotEndSession: the search index is derived data. A
// store that refuses it is not a recording failure (the old code called
// OnFailure, which ends a session under on_failure: terminate, and Close
// returned an error although the file was complete).
func TestIndexFailureDoesNotEndSession(t *testing.T) {
	m, st, _ := newTestManager(t)
	st.indexErr = errors.New("database is locked")
	m.now = time.Now
	m.interval = 10 * time.Millisecond
	failed := make(chan error, 1)
	meta := testMeta("s")
	meta.OnFailure = func(err error) { failed <- err }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	r, err := m.Start(context.Background(), meta)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		r.Output(fmt.Appendf(nil, "line %d\r\n", i))
	}
	for !r.indexGap.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if _, _, err := r.Close(context.Background()); err != nil {
		t.Errorf("Close: %v (the file is complete; only the index failed)", err)
	}
	select {
	case err := <-failed:
		t.Errorf("an index failure was reported as a recording failure: %v", err)
	default:
	}
	if rec, _ := st.GetRecording(context.Background(), "s"); rec.State != store.RecordingEnded {
		t.Errorf("state %q, want ended", rec.State)
	}
}

// TestRowsWaitForAWritableStore: a store that refuses writes when a
// session starts and when it ends (a locked SQLite file) fails neither;
// the recording's row is created and ended once it takes writes again,
// so it is not left active (the old code failed Start, and a failed end
// left the recording active until the next restart).
func TestRowsWaitForAWritableStore(t *testing.T) {
	m, st, _ := newTestManager(t)
	m.now = time.Now
	st.setWriteErr(errors.New("database is locked"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	failed := make(chan error, 1)
	meta := testMeta("locked")
	meta.OnFailure = func(err error) { failed <- err }
	r, err := m.Start(context.Background(), meta)
	if err != nil {
		t.Fatalf("Start with a locked store: %v", err)
	}
	r.Output([]byte("during the lock\r\n"))
	size, sum, err := r.Close(context.Background())
	if err != nil {
		t.Fatalf("Close with a locked store: %v", err)
	}
	if m.RowsPending() != 1 {
		t.Fatalf("RowsPending = %d, want 1", m.RowsPending())
	}
	// A second session starts and ends while the lock holds too.
	r2, err := m.Start(context.Background(), testMeta("locked2"))
	if err != nil {
		t.Fatal(err)
	}
	st.setWriteErr(nil)
	for m.RowsPending() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	rec, err := st.GetRecording(context.Background(), "locked")
	if err != nil || rec.State != store.RecordingEnded || rec.Size != size || rec.SHA256 != sum || rec.EndedAt.IsZero() {
		t.Fatalf("row after the lock: %+v %v", rec, err)
	}
	if rec2, err := st.GetRecording(context.Background(), "locked2"); err != nil || rec2.State != store.RecordingActive {
		t.Fatalf("second row after the lock: %+v %v", rec2, err)
	}
	if _, _, err := r2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec2, _ := st.GetRecording(context.Background(), "locked2"); rec2.State != store.RecordingEnded {
		t.Errorf("second row after Close: %q", rec2.State)
	}
	select {
	case err := <-failed:
		t.Errorf("a refused row was reported as a recording failure: %v", err)
	default:
	}
}

func TestDeleteActive(t *testing.T) {
	m, st, clk := newTestManager(t)
	r, err := m.Start(context.Background(), testMeta("s"))
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("secret stuff\r\n"))
	flushSync(t, r)
	follow := make(chan error, 1)
	started := newSignalWriter()
	go func() { follow <- m.Follow(context.Background(), "s", true, started) }()
	<-started.wrote
	if err := m.Delete(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.Dir(), "s.cast")); !os.IsNotExist(err) {
		t.Errorf("file still there: %v", err)
	}
	if _, err := st.GetRecording(context.Background(), "s"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("metadata still there: %v", err)
	}
	if len(m.Active()) != 0 {
		t.Errorf("Active = %v", m.Active())
	}
	select {
	case err := <-follow:
		if err != nil && !errors.Is(err, ErrDeleted) {
			t.Errorf("Follow: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not end")
	}
	clk.Advance(time.Second)
	r.Output([]byte("more"))
	r.Resize(10, 10)
	flushSync(t, r)
	if _, _, err := r.Close(context.Background()); !errors.Is(err, ErrDeleted) {
		t.Errorf("Close after Delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(m.Dir(), "s.cast")); !os.IsNotExist(err) {
		t.Errorf("file came back: %v", err)
	}
	if txt := st.text("s"); txt != "" {
		t.Errorf("index kept %q", txt)
	}
	if err := m.Delete(context.Background(), "s"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Delete: %v", err)
	}
}

func TestDeleteOlderThan(t *testing.T) {
	m, st, clk := newTestManager(t)
	ids := []string{"old1", "old2", "new1"}
	for _, id := range ids {
		if id == "new1" {
			clk.Advance(48 * time.Hour)
		}
		record(t, m, clk, testMeta(id), func(r *Recorder) { r.Output([]byte(id)) })
	}
	active, err := m.Start(context.Background(), testMeta("active-old"))
	if err != nil {
		t.Fatal(err)
	}
	defer active.Close(context.Background())
	st.mu.Lock() // an active recording that started long ago is kept
	rec := st.recs["active-old"]
	rec.StartedAt = rec.StartedAt.Add(-100 * time.Hour)
	st.recs["active-old"] = rec
	st.mu.Unlock()
	got, err := m.DeleteOlderThan(context.Background(), clk.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "old2,old1" && strings.Join(got, ",") != "old1,old2" {
		t.Errorf("deleted %v", got)
	}
	for id, want := range map[string]bool{"old1": false, "old2": false, "new1": true, "active-old": true} {
		_, err := os.Stat(filepath.Join(m.Dir(), id+".cast"))
		if (err == nil) != want {
			t.Errorf("%s: file exists %v, want %v", id, err == nil, want)
		}
	}
}

func TestOpen(t *testing.T) {
	m, _, _ := newTestManager(t)
	r, err := m.Start(context.Background(), testMeta("s"))
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("flushed"))
	flushSync(t, r)
	r.Output([]byte("not yet"))
	rc, rec, err := m.Open(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if rec.State != store.RecordingActive || !bytes.Contains(b, []byte("flushed")) || bytes.Contains(b, []byte("not yet")) {
		t.Errorf("Open: %+v %q", rec, b)
	}
	r.Close(context.Background())
	for _, id := range []string{"missing", "../etc/passwd"} {
		if _, _, err := m.Open(context.Background(), id); err == nil {
			t.Errorf("Open(%q) succeeded", id)
		}
	}
}

// TestRecoverOwnGateway: gateways sharing a store each recover only their
// own recordings; a restarting gateway leaves those another one is writing
// active.
func TestRecoverOwnGateway(t *testing.T) {
	ctx := context.Background()
	a, st, _ := newTestManager(t)
	a.SetGateway("gw-a")
	b, err := NewManager(filepath.Join(t.TempDir(), "rec-b"), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.SetGateway("gw-b")
	if _, err := a.Start(ctx, testMeta("sa")); err != nil {
		t.Fatal(err)
	}
	rb, err := b.Start(ctx, testMeta("sb"))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.rec(t, "sa").Gateway; got != "gw-a" {
		t.Errorf("a's recording stored with gateway %q, want gw-a", got)
	}
	// Gateway a restarts (its recording was never closed); b goes on.
	a2, err := NewManager(a.Dir(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	a2.SetGateway("gw-a")
	recs, err := a2.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != "sa" || recs[0].State != store.RecordingInterrupted {
		t.Fatalf("Recover of gw-a returned %+v, want sa only", recs)
	}
	if rec := st.rec(t, "sb"); rec.State != store.RecordingActive {
		t.Errorf("gw-b's recording after gw-a recovered: %+v, want active", rec)
	}
	rb.Output([]byte("still recording\r\n"))
	if _, _, err := rb.Close(ctx); err != nil {
		t.Errorf("gw-b closes its recording: %v", err)
	}
	if rec := st.rec(t, "sb"); rec.State != store.RecordingEnded {
		t.Errorf("gw-b's recording after Close: %+v, want ended", rec)
	}
}

func TestRecover(t *testing.T) {
	tests := []struct {
		name string
		tear func(t *testing.T, path string, good []byte) // damage the file a kill left
		want func(good []byte) []byte                     // what Recover should leave
	}{
		{
			name: "clean end",
			tear: func(t *testing.T, path string, good []byte) {},
			want: func(good []byte) []byte { return good },
		},
		{
			name: "torn last line",
			tear: func(t *testing.T, path string, good []byte) { appendFile(t, path, `[3.000001, "o", "half a li`) },
			want: func(good []byte) []byte { return good },
		},
		{
			name: "complete line without newline",
			tear: func(t *testing.T, path string, good []byte) { appendFile(t, path, `[3.000001, "o", "whole"]`) },
			want: func(good []byte) []byte { return append(good, `[3.000001, "o", "whole"]`+"\n"...) },
		},
		{
			name: "torn header",
			tear: func(t *testing.T, path string, good []byte) {
				if err := os.WriteFile(path, []byte(`{"version":2,"wid`), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: nil, // a rebuilt header only
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, st, _ := newTestManager(t)
			r, err := m.Start(context.Background(), testMeta("s"))
			if err != nil {
				t.Fatal(err)
			}
			r.Output([]byte("before the kill\r\n"))
			flushSync(t, r)
			// The gateway dies here: r is never closed.
			path := filepath.Join(m.Dir(), "s.cast")
			good, _ := os.ReadFile(path)
			tt.tear(t, path, good)

			m2, err := NewManager(m.Dir(), st, nil)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := m2.Recover(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0].ID != "s" || recs[0].State != store.RecordingInterrupted {
				t.Fatalf("Recover returned %+v", recs)
			}
			got, _ := os.ReadFile(path)
			if tt.want != nil {
				if want := tt.want(good); !bytes.Equal(got, want) {
					t.Errorf("file\n%q\nwant\n%q", got, want)
				}
			}
			if _, evs := readCast(t, path); tt.want == nil && len(evs) != 0 {
				t.Errorf("events %v", evs)
			}
			h := sha256.Sum256(got)
			rec := st.rec(t, "s")
			if rec.State != store.RecordingInterrupted || rec.Size != int64(len(got)) || rec.SHA256 != hex.EncodeToString(h[:]) {
				t.Errorf("stored %+v, file %d bytes", rec, len(got))
			}
			if recs[0].Size != rec.Size || recs[0].SHA256 != rec.SHA256 {
				t.Errorf("returned %+v", recs[0])
			}
			// Nothing left to recover.
			if recs, err := m2.Recover(context.Background()); err != nil || len(recs) != 0 {
				t.Errorf("second Recover: %v %v", recs, err)
			}
		})
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// signalWriter collects what is written and closes wrote at the first
// write.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
	once  sync.Once
}

func newSignalWriter() *signalWriter { return &signalWriter{wrote: make(chan struct{})} }

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.once.Do(func() { close(w.wrote) })
	return w.buf.Write(p)
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
