package recording

import (
	"context"
	"fmt"
	"runtime"
	"testing"
)

// TestIdleMemory: an idle recorder holds no large buffer (the design
// budget is 128 KiB of memory per idle session, all parts included).
func TestIdleMemory(t *testing.T) {
	m, _, _ := newTestManager(t)
	var rs []*Recorder
	runtime.GC()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	for i := range 1000 {
		r, err := m.Start(context.Background(), testMeta(fmt.Sprint("s", i)))
		if err != nil {
			t.Fatal(err)
		}
		r.Output([]byte("Last login: today\r\n$ ls\r\nfoo bar\r\n$ "))
		flushSync(t, r)
		rs = append(rs, r)
	}
	runtime.GC()
	runtime.ReadMemStats(&b)
	per := (int64(b.HeapAlloc) - int64(a.HeapAlloc)) / 1000
	t.Logf("heap per idle recorder: %d bytes", per)
	if per > 48<<10 {
		t.Errorf("an idle recorder holds %d bytes", per)
	}
	for _, r := range rs {
		r.Close(context.Background())
	}
}
