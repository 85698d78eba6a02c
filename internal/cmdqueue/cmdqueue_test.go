package cmdqueue

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// queueStore is a Store that records what it stored; while held, it
// waits for release or, when honorCtx, for the line's deadline.
type queueStore struct {
	mu       sync.Mutex
	stored   []string
	held     bool
	honorCtx bool
	release  chan struct{}
}

func (s *queueStore) AppendCommand(ctx context.Context, c store.Command) (int64, error) {
	if s.held {
		if s.honorCtx {
			<-ctx.Done()
			return 0, ctx.Err()
		}
		<-s.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stored = append(s.stored, c.SessionID+":"+c.Command)
	return int64(len(s.stored)), nil
}

// TestCommandQueue: lines are stored in the order they were queued, add
// never waits for the store, Wait returns once a session's lines are
// stored, and a store that never answers costs each line at most
// MaxWait from when it was typed, after which it is logged as lost.
func TestCommandQueue(t *testing.T) {
	lines := []store.Command{
		{SessionID: "a", Command: "ls"},
		{SessionID: "b", Command: "id"},
		{SessionID: "a", Command: "exit"},
		{SessionID: "b", Command: "exit"},
	}
	for _, tc := range []struct {
		name      string
		held      bool // the store takes nothing until the lines are queued
		neverSays bool // the store never answers; lines expire
		want      string
		wantLog   string
	}{
		{name: "store answers", want: "a:ls b:id a:exit b:exit"},
		{name: "store busy while the lines are typed", held: true, want: "a:ls b:id a:exit b:exit"},
		{name: "store never answers", held: true, neverSays: true, want: "", wantLog: "command history not stored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.neverSays {
			}
			st := &queueStore{held: tc.held, honorCtx: tc.neverSays, release: make(chan struct{})}
			var logBuf syncBuf
			q := New(st, slog.New(slog.NewTextHandler(&logBuf, nil)))
			if tc.neverSays {
				q.MaxWait = 0 // every line has already waited long enough
			}
			var last uint64
			for _, c := range lines {
				c.Time = time.Now()
				last = q.Add(c) // returns at once even while the store is held
			}
			if tc.held && !tc.neverSays {
				close(st.release)
			}
			q.Wait(last)
			st.mu.Lock()
			got := strings.Join(st.stored, " ")
			st.mu.Unlock()
			if got != tc.want {
				t.Fatalf("stored %q, want %q", got, tc.want)
			}
			if n := strings.Count(logBuf.String(), tc.wantLog); tc.wantLog != "" && n != len(lines) {
				t.Fatalf("log has %q %d times, want %d:\n%s", tc.wantLog, n, len(lines), logBuf.String())
			}
			// The writer goroutine ends with the queue: a later line
			// starts a new one and is stored as well.
			q.mu.Lock()
			running := q.running
			q.mu.Unlock()
			for running {
				time.Sleep(time.Millisecond)
				q.mu.Lock()
				running = q.running
				q.mu.Unlock()
			}
			st.held = false
			q.Wait(q.Add(store.Command{SessionID: "c", Command: "true", Time: time.Now()}))
			st.mu.Lock()
			defer st.mu.Unlock()
			if st.stored[len(st.stored)-1] != "c:true" {
				t.Fatalf("after the queue emptied, stored %q", st.stored)
			}
		})
	}
}

// syncBuf is a bytes.Buffer for a logger written from the writer goroutine.
type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCommandQueueBounded: past MaxBytes, Add waits for the store
// (the session's typing is held, as before the queue) instead of growing
// memory without limit; once the store takes lines, the waiting line is
// queued and stored after the others, in order.
func TestCommandQueueBounded(t *testing.T) {
	st := &queueStore{held: true, release: make(chan struct{})}
	q := New(st, slog.New(slog.NewTextHandler(&syncBuf{}, nil)))
	q.MaxBytes = 10
	q.Add(store.Command{SessionID: "a", Command: "echo 12345", Time: time.Now()}) // 10 bytes: fills the queue
	added := make(chan uint64)
	go func() { added <- q.Add(store.Command{SessionID: "a", Command: "exit", Time: time.Now()}) }()
	bound := time.Now().Add(10 * time.Second) // a failure bound, not a timing
	for {
		if time.Now().After(bound) {
			t.Fatal("a second line was queued past MaxBytes: Add did not wait for room")
		}
		q.mu.Lock()
		full, queued, pending := q.full, q.queued, len(q.pending)
		q.mu.Unlock()
		if full == 1 {
			if queued != 10 || pending > 1 {
				t.Fatalf("with an add waiting: %d bytes and %d lines queued, want 10 and at most 1", queued, pending)
			}
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(st.release)
	q.Wait(<-added)
	st.mu.Lock()
	defer st.mu.Unlock()
	if got := strings.Join(st.stored, " "); got != "a:echo 12345 a:exit" {
		t.Fatalf("stored %q", got)
	}
}

// TestCommandQueueDrain: Drain returns once the queue is written, and
// reports the lines a store that does not answer kept, rather than the
// process exiting on them without a word.
func TestCommandQueueDrain(t *testing.T) {
	st := &queueStore{release: make(chan struct{})}
	q := New(st, slog.New(slog.DiscardHandler))
	q.Add(store.Command{SessionID: "a", Command: "ls", Time: time.Now()})
	if left := q.Drain(5 * time.Second); left != 0 {
		t.Fatalf("drain with a store that answers: %d lines left", left)
	}
	st.held = true
	q.Add(store.Command{SessionID: "a", Command: "exit", Time: time.Now()})
	if left := q.Drain(50 * time.Millisecond); left != 1 {
		t.Fatalf("drain with a store that does not answer: %d lines left, want 1", left)
	}
	close(st.release)
	if left := q.Drain(5 * time.Second); left != 0 {
		t.Fatalf("drain after the store answered: %d lines left", left)
	}
}

// TestCommandQueueTryAdd: past MaxBytes, TryAdd drops the row at once
// (never waiting for a store that is held), counts it and logs the drops
// once for the burst, not once per row; with room again, rows are queued
// and stored.
func TestCommandQueueTryAdd(t *testing.T) {
	st := &queueStore{held: true, release: make(chan struct{})}
	var logBuf syncBuf
	q := New(st, slog.New(slog.NewTextHandler(&logBuf, nil)))
	q.MaxBytes = 10
	if !q.TryAdd(store.Command{SessionID: "a", Command: "get pods", Time: time.Now()}) {
		t.Fatal("TryAdd into an empty queue dropped the row")
	}
	for range 5 {
		if q.TryAdd(store.Command{SessionID: "a", Command: "get secrets", Time: time.Now()}) {
			t.Fatal("TryAdd past MaxBytes queued the row")
		}
	}
	if n := q.Dropped(); n != 5 {
		t.Fatalf("Dropped() = %d, want 5", n)
	}
	if n := strings.Count(logBuf.String(), "rows dropped"); n != 1 {
		t.Fatalf("%d drop log lines for one burst, want 1:\n%s", n, logBuf.String())
	}
	close(st.release)
	if left := q.Drain(10 * time.Second); left != 0 {
		t.Fatalf("%d rows left", left)
	}
	if !q.TryAdd(store.Command{SessionID: "b", Command: "get nodes", Time: time.Now()}) {
		t.Fatal("TryAdd with room dropped the row")
	}
	q.Drain(10 * time.Second)
	st.mu.Lock()
	defer st.mu.Unlock()
	if got := strings.Join(st.stored, " "); got != "a:get pods b:get nodes" {
		t.Fatalf("stored %q", got)
	}
}

// batchStore is a queueStore that also stores batches: it records their
// sizes, and fails those holding a row named "fail".
type batchStore struct {
	queueStore
	batches []int
}

func (s *batchStore) AppendCommands(ctx context.Context, cs []store.Command) error {
	s.mu.Lock()
	s.batches = append(s.batches, len(cs))
	s.mu.Unlock()
	for _, c := range cs {
		if c.Command == "fail" {
			return errors.New("a row the store refuses")
		}
	}
	for _, c := range cs {
		if _, err := s.AppendCommand(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// TestCommandQueueBatches: with a BatchStore, the rows queued while a
// write ran are stored in one batch, in order; a batch the store refuses
// is stored row by row, so that one bad row does not cost the others.
func TestCommandQueueBatches(t *testing.T) {
	for _, tc := range []struct {
		name, third, want string
	}{
		{"batch", "3", "a:1 a:2 a:3 a:4 a:5"},
		// The fake refuses "fail" in a batch only: row by row, all are
		// stored.
		{"refused batch", "fail", "a:1 a:2 a:fail a:4 a:5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &batchStore{queueStore: queueStore{held: true, release: make(chan struct{})}}
			q := New(st, slog.New(slog.DiscardHandler))
			q.Add(store.Command{SessionID: "a", Command: "1"})
			for taken := false; !taken; time.Sleep(time.Millisecond) {
				q.mu.Lock()
				taken = len(q.pending) == 0 // the writer holds row 1 in the store
				q.mu.Unlock()
			}
			for _, c := range []string{"2", tc.third, "4", "5"} {
				q.Add(store.Command{SessionID: "a", Command: c})
			}
			close(st.release)
			if left := q.Drain(10 * time.Second); left != 0 {
				t.Fatalf("%d rows left", left)
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			if got := strings.Join(st.stored, " "); got != tc.want {
				t.Fatalf("stored %q, want %q", got, tc.want)
			}
			if len(st.batches) != 1 || st.batches[0] != 4 {
				t.Fatalf("batches %v, want one of 4 after the first row", st.batches)
			}
		})
	}
}
