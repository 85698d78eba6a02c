package recording

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// fakeStore implements the recording methods of store.Store in memory. The
// embedded interface is nil: any other method panics, which says this
// package calls something it should not.
type fakeStore struct {
	store.Store

	mu       sync.Mutex
	recs     map[string]store.Recording
	chunks   []store.TextChunk
	indexErr error // returned by IndexText when set
	writeErr error // returned by every write when set (a locked store)
}

func (s *fakeStore) setWriteErr(err error) {
	s.mu.Lock()
	s.writeErr = err
	s.mu.Unlock()
}

func newFakeStore() *fakeStore { return &fakeStore{recs: map[string]store.Recording{}} }

func (s *fakeStore) CreateRecording(_ context.Context, r store.Recording) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeErr != nil {
		return s.writeErr
	}
	if _, ok := s.recs[r.ID]; ok {
		return fmt.Errorf("create recording %q: %w", r.ID, store.ErrConflict)
	}
	r.State, r.IndexState = store.RecordingActive, store.IndexLive
	s.recs[r.ID] = r
	return nil
}

func (s *fakeStore) FinishRecording(_ context.Context, id, state string, endedAt time.Time, size int64, sum string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeErr != nil {
		return s.writeErr
	}
	r, ok := s.recs[id]
	if !ok {
		return fmt.Errorf("finish recording %q: %w", id, store.ErrNotFound)
	}
	r.State, r.EndedAt, r.Size, r.SHA256 = state, endedAt, size, sum
	s.recs[id] = r
	return nil
}

func (s *fakeStore) GetRecording(_ context.Context, id string) (store.Recording, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	if !ok {
		return store.Recording{}, fmt.Errorf("get recording %q: %w", id, store.ErrNotFound)
	}
	return r, nil
}

func (s *fakeStore) ListRecordings(_ context.Context, f store.RecordingFilter) ([]store.Recording, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Recording
	for _, r := range s.recs {
		if (f.State == "" || r.State == f.State) && (f.User == "" || r.User == f.User) &&
			(f.Target == "" || r.Target == f.Target) && (f.Since.IsZero() || !r.StartedAt.Before(f.Since)) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b store.Recording) int { return b.StartedAt.Compare(a.StartedAt) })
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *fakeStore) DeleteRecording(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recs[id]; !ok {
		return fmt.Errorf("delete recording %q: %w", id, store.ErrNotFound)
	}
	delete(s.recs, id)
	s.chunks = slices.DeleteFunc(s.chunks, func(c store.TextChunk) bool { return c.RecordingID == id })
	return nil
}

func (s *fakeStore) InterruptActive(_ context.Context, gateway string, endedAt time.Time) ([]store.Recording, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Recording
	for id, r := range s.recs {
		if r.Gateway == gateway && r.State == store.RecordingActive {
			r.State, r.EndedAt = store.RecordingInterrupted, endedAt
			s.recs[id] = r
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *fakeStore) IndexText(_ context.Context, chunks []store.TextChunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.indexErr != nil {
		return s.indexErr
	}
	if s.writeErr != nil {
		return s.writeErr
	}
	for _, c := range chunks {
		if _, ok := s.recs[c.RecordingID]; !ok {
			return fmt.Errorf("index text: recording %q: %w", c.RecordingID, store.ErrNotFound)
		}
	}
	s.chunks = append(s.chunks, chunks...)
	return nil
}

func (s *fakeStore) rec(t *testing.T, id string) store.Recording {
	t.Helper()
	r, err := s.GetRecording(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// text returns the indexed text of a recording, chunks joined by newlines.
func (s *fakeStore) text(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, c := range s.chunks {
		if c.RecordingID == id {
			b.WriteString(c.Text)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (s *fakeStore) chunksOf(id string) []store.TextChunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.TextChunk
	for _, c := range s.chunks {
		if c.RecordingID == id {
			out = append(out, c)
		}
	}
	return out
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// SleepUntil (for play) moves the clock instead of sleeping.
func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	if t.After(c.t) {
		c.t = t
	}
	c.mu.Unlock()
	return ctx.Err()
}

// newTestManager returns a Manager on a temporary directory, a fake store
// and a fake clock.
func newTestManager(t testing.TB) (*Manager, *fakeStore, *fakeClock) {
	t.Helper()
	st := newFakeStore()
	m, err := NewManager(filepath.Join(t.TempDir(), "rec"), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	m.now = clk.Now
	return m, st, clk
}

// testMeta is the metadata of a test session.
func testMeta(id string) Meta {
	return Meta{ID: id, User: "alice", Target: "web1", Account: "root", Source: "192.0.2.1:5555",
		Action: "shell", Width: 80, Height: 24, Term: "xterm-256color"}
}

// readCast reads a whole recording file.
func readCast(t testing.TB, path string) (Header, []Event) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	for {
		ev, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return rd.Header(), evs
			}
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
}

// outputOf concatenates the data of the events of type typ.
func outputOf(evs []Event, typ string) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Type == typ {
			b.WriteString(e.Data)
		}
	}
	return b.String()
}

func (s *fakeStore) SetRecordingGap(_ context.Context, id string, lost int64, from, to time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeErr != nil {
		return s.writeErr
	}
	r, ok := s.recs[id]
	if !ok {
		return fmt.Errorf("set gap of recording %q: %w", id, store.ErrNotFound)
	}
	r.LostBytes, r.GapFrom, r.GapTo = lost, from, to
	s.recs[id] = r
	return nil
}

func (s *fakeStore) SetRecordingIndex(_ context.Context, id, state string, offset int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeErr != nil {
		return s.writeErr
	}
	r, ok := s.recs[id]
	if !ok {
		return fmt.Errorf("set index state of recording %q: %w", id, store.ErrNotFound)
	}
	r.IndexState, r.IndexOffset = state, offset
	s.recs[id] = r
	return nil
}

func (s *fakeStore) IndexBacklog(_ context.Context, gateway string, limit int) ([]store.Recording, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Recording
	for _, r := range s.recs {
		if r.Gateway == gateway && r.State != store.RecordingActive &&
			(r.IndexState == store.IndexLive || r.IndexState == store.IndexPartial) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b store.Recording) int { return a.StartedAt.Compare(b.StartedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *fakeStore) DeleteRecordingText(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunks = slices.DeleteFunc(s.chunks, func(c store.TextChunk) bool { return c.RecordingID == id })
	return nil
}
