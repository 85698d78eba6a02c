package fdlimit

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestRaise lowers the soft limit of this test process (which runs only
// this package's tests) and checks that Raise lifts it to the hard limit.
func TestRaise(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = min(lim.Max, 256)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	soft, hard, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	if soft != lim.Max || hard != lim.Max {
		t.Fatalf("after Raise: soft %d hard %d, want both %d", soft, hard, lim.Max)
	}
	var now syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now)
	if now.Cur != lim.Max {
		t.Fatalf("soft limit is %d after Raise, want %d", now.Cur, lim.Max)
	}
}

// TestBudget: Admit keeps the reserve free, counts what it admitted until
// it counts again, and sees descriptors opened and closed elsewhere.
func TestBudget(t *testing.T) {
	free := (&Budget{}).Free()
	if free <= 100 {
		t.Skipf("only %d descriptors free", free)
	}
	// Leave room for exactly 10 more beyond the reserve (give or take the
	// descriptor Free itself opens and closes).
	// The clock stands still: Admit counts again only when asked to
	// (Free), however slow the machine.
	at := time.Now()
	b := &Budget{Reserve: free - 10, now: func() time.Time { return at }}
	steps := []struct {
		cost, keep int
		want       bool
	}{
		{4, 100, true},
		{4, 100, true},
		{4, 100, false}, // 12 > 10: what it admitted counts until a recount
		{4, 50, true},   // with half the reserve kept there is room
	}
	for i, s := range steps {
		if got := b.Admit(s.cost, s.keep); got != s.want {
			t.Fatalf("step %d: Admit(%d, %d) = %v, want %v", i, s.cost, s.keep, got, s.want)
		}
	}
	// Descriptors opened elsewhere count at the next recount.
	var files []*os.File
	for range 20 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if got := b.Free(); got > free-19 {
		t.Errorf("Free = %d with 20 more files open, want at most %d", got, free-19)
	}
	if b.Admit(1, 100) {
		t.Error("Admit with 20 more files open and 10 to spare: admitted")
	}
	for _, f := range files {
		f.Close()
	}
	// Closed ones are seen at the next count (which Admit makes itself
	// when it is near the limit, at most every few milliseconds).
	b.Free()
	if !b.Admit(4, 100) {
		t.Error("Admit after the files closed: refused")
	}
}
