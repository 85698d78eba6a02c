package recording

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/testenv"
)

// timedWriter records when (on a fake clock) each write happened.
type timedWriter struct {
	clk   *fakeClock
	start time.Time
	out   []string
}

func (w *timedWriter) Write(p []byte) (int, error) {
	w.out = append(w.out, fmt.Sprintf("%.2f:%s", w.clk.Now().Sub(w.start).Seconds(), p))
	return len(p), nil
}

func TestPlayTiming(t *testing.T) {
	cast := `{"version":2,"width":80,"height":24}
[0.0, "o", "a"]
[1.0, "o", "b"]
[1.2, "i", "typed"]
[1.5, "o", "c"]
[1.6, "r", "100x30"]
[11.5, "o", "d"]
[12.0, "o", "e"]
`
	tests := []struct {
		name string
		o    PlayOptions
		want string
	}{
		{"as recorded", PlayOptions{}, "0.00:a 1.00:b 1.50:c 11.50:d 12.00:e"},
		{"speed 2", PlayOptions{Speed: 2}, "0.00:a 0.50:b 0.75:c 5.75:d 6.00:e"},
		{"idle limit", PlayOptions{IdleLimit: 2 * time.Second}, "0.00:a 1.00:b 1.50:c 3.50:d 4.00:e"},
		{"speed and idle limit", PlayOptions{Speed: 2, IdleLimit: 2 * time.Second}, "0.00:a 0.50:b 0.75:c 1.75:d 2.00:e"},
		{"at", PlayOptions{At: 1.2}, "0.00:ab 0.30:c 10.30:d 10.80:e"},
		{"at an event", PlayOptions{At: 1.5}, "0.00:abc 10.00:d 10.50:e"},
		{"at and idle limit", PlayOptions{At: 1.2, IdleLimit: time.Second}, "0.00:ab 0.30:c 1.30:d 1.80:e"},
		{"at past the end", PlayOptions{At: 100}, "0.00:abcde"},
		{"bad speed", PlayOptions{Speed: -3}, "0.00:a 1.00:b 1.50:c 11.50:d 12.00:e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			w := &timedWriter{clk: clk, start: clk.Now()}
			if err := play(context.Background(), strings.NewReader(cast), w, tt.o, clk); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(w.out, " "); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestPlayRealClock(t *testing.T) {
	cast := "{\"version\":2,\"width\":80,\"height\":24}\n[0.0, \"o\", \"a\"]\n[0.2, \"o\", \"b\"]\n[60, \"o\", \"c\"]\n"
	var out bytes.Buffer
	start := time.Now()
	if err := Play(context.Background(), strings.NewReader(cast), &out, PlayOptions{Speed: 2, IdleLimit: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	// 0.2 s at speed 2, then 59.8 s cut to 0.5 s at speed 2: 0.35 s. Only
	// the lower bound is checked (the real clock was used); how much
	// longer a loaded machine takes is not this test's business.
	if el := time.Since(start); el < 350*time.Millisecond {
		t.Errorf("played in %v, want at least 350ms", el)
	}
	if out.String() != "abc" {
		t.Errorf("played %q", out.String())
	}
	// Cancelled in a long pause.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := Play(ctx, strings.NewReader(cast), &out, PlayOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled Play: %v", err)
	}
}

func TestPlayErrors(t *testing.T) {
	for _, in := range []string{"", "junk\n", "{\"version\":2,\"width\":80,\"height\":24}\n[0, \"o\", \"a\"]\nnot json\n"} {
		var out bytes.Buffer
		err := play(context.Background(), strings.NewReader(in), &out, PlayOptions{}, newFakeClock())
		if err == nil {
			t.Errorf("Play(%q) succeeded", in)
		}
	}
}

func TestFollow(t *testing.T) {
	for _, fromStart := range []bool{true, false} {
		t.Run(fmt.Sprintf("fromStart=%v", fromStart), func(t *testing.T) {
			m, _, clk := newTestManager(t)
			r, err := m.Start(context.Background(), testMeta("s"))
			if err != nil {
				t.Fatal(err)
			}
			r.Output([]byte("before\r\n"))
			flushSync(t, r)
			w := newSignalWriter()
			done := make(chan error, 1)
			go func() { done <- m.Follow(context.Background(), "s", fromStart, w) }()
			<-w.wrote // the header at least
			if fromStart {
				waitFor(t, func() bool { return strings.Contains(w.String(), "before") })
			}
			clk.Advance(time.Second)
			r.Output([]byte("after\r\n"))
			flushSync(t, r)
			waitFor(t, func() bool { return strings.Contains(w.String(), "after") })
			clk.Advance(time.Second)
			r.Output([]byte("last\r\n"))
			if _, _, err := r.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Follow did not end with the recording")
			}
			path := filepath.Join(t.TempDir(), "followed.cast")
			if err := os.WriteFile(path, []byte(w.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			hdr, evs := readCast(t, path)
			if hdr.Portcullis["session"] != "s" {
				t.Errorf("header %+v", hdr)
			}
			want := "after\r\nlast\r\n"
			if fromStart {
				want = "before\r\n" + want
			}
			if got := outputOf(evs, "o"); got != want {
				t.Errorf("followed %q, want %q", got, want)
			}
		})
	}
}

func TestFollowEnded(t *testing.T) {
	m, _, clk := newTestManager(t)
	record(t, m, clk, testMeta("s"), func(r *Recorder) { r.Output([]byte("all of it")) })
	var out bytes.Buffer
	if err := m.Follow(context.Background(), "s", true, &out); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(m.Dir(), "s.cast"))
	if out.String() != string(want) {
		t.Errorf("followed %q, want the file %q", out.String(), want)
	}
	if err := m.Follow(context.Background(), "nope", true, &out); err == nil {
		t.Error("Follow of a missing recording succeeded")
	}
}

func TestFollowCancel(t *testing.T) {
	m, _, _ := newTestManager(t)
	r, err := m.Start(context.Background(), testMeta("s"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := m.Follow(ctx, "s", false, newSignalWriter()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Follow: %v", err)
	}
}

// TestFollowWithRun watches a recording that Run flushes, with lines
// written by several goroutines.
func TestFollowWithRun(t *testing.T) {
	m, _, _ := newTestManager(t)
	m.now = time.Now
	m.interval = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.Run(ctx)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	r, err := m.Start(context.Background(), testMeta("s"))
	if err != nil {
		t.Fatal(err)
	}
	w := newSignalWriter()
	done := make(chan error, 1)
	go func() { done <- m.Follow(ctx, "s", true, w) }()
	var out sync.WaitGroup
	for g := range 4 {
		out.Add(1)
		go func() {
			defer out.Done()
			for i := range 200 {
				r.Output(fmt.Appendf(nil, "g%d line %d\r\n", g, i))
			}
		}()
	}
	out.Wait()
	if _, _, err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(m.Dir(), "s.cast"))
	if w.String() != string(raw) {
		t.Errorf("followed %d bytes, file has %d", len(w.String()), len(raw))
	}
}

// TestAsciinema checks that the real asciinema 2.2 (Debian) reads our
// files, extra header keys included: `asciinema cat` prints exactly the
// recorded output, and `asciinema play` plays it.
func TestAsciinema(t *testing.T) {
	testenv.Require(t, "asciinema", "script")
	m, _, clk := newTestManager(t)
	meta := testMeta("cast-1")
	meta.Action, meta.Command = "exec", `printf '%s\n' "quoted \"arg\""`
	meta.RecordInput = true
	_, evs := record(t, m, clk, meta, func(r *Recorder) {
		r.Output([]byte("$ \x1b[1mls\x1b[0m -l\r\n"))
		clk.Advance(100 * time.Millisecond)
		r.Input([]byte("q"))
		r.Output([]byte("Gr\xc3"))
		r.Output([]byte("\xbc\xc3\x9fe \xe2\x9c"))
		r.Output([]byte("\x93 \"quoted\" back\\slash tab\there \x00nul \x7fdel\r\n"))
		clk.Advance(2 * time.Second)
		r.Resize(100, 30)
		r.Output([]byte("caf\xe9 \xf0\x9f\x98\x80\r\n$ "))
	})
	want := outputOf(evs, "o")
	if !strings.Contains(want, "Grüße ✓") || !strings.Contains(want, "😀") {
		t.Fatalf("recorded %q", want)
	}
	path := filepath.Join(m.Dir(), "cast-1.cast")

	// asciinema cat opens /dev/tty: give it one with script(1), and take
	// its stdout from a file so that the pty does not translate newlines.
	out := filepath.Join(t.TempDir(), "cat.out")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "script", "-q", "-e", "-c", "asciinema cat "+path+" > "+out, "/dev/null")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("asciinema cat: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("asciinema cat printed\n%q\nwant\n%q", got, want)
	}

	cmd = exec.CommandContext(ctx, "asciinema", "play", "-s", "4", "-i", "0.05", path)
	played, err := cmd.Output()
	if err != nil {
		t.Fatalf("asciinema play: %v", err)
	}
	if string(played) != want {
		t.Errorf("asciinema play printed\n%q\nwant\n%q", played, want)
	}
}
