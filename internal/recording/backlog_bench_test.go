package recording

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkOutputBacklog is BenchmarkOutputText with the flusher further
// behind: under a bulk stream through the gateway the session outruns the
// flusher (it is kicked at flushSoon, 4 MiB, and wakes later), so a flush
// finds more than 4 MiB pending, and a pending buffer over maxPooled (8 MiB)
// is not pooled again. `seq` output in 32 KiB writes, a flush every
// 2, 8 or 32 MiB:
//
//   - output: Output alone (the session's path) and the buffer handed
//     back as the flusher would, without its work;
//   - pipeline: Output and flush (encode, write, SHA-256, index feed) on
//     one goroutine.
func BenchmarkOutputBacklog(b *testing.B) {
	seq := seqText(32 << 10)
	for _, every := range []int{64, 256, 1024} {
		name := fmt.Sprintf("%dMiB", every*len(seq)>>20)
		b.Run("output/"+name, func(b *testing.B) {
			m, _, _ := newTestManager(b)
			r, err := m.Start(context.Background(), testMeta("bench"))
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close(context.Background())
			b.SetBytes(int64(len(seq)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				r.Output(seq)
				if n++; n%every == 0 {
					r.mu.Lock()
					pb := r.pending
					r.pending, r.pendLen = nil, 0
					r.kicked = false
					r.mu.Unlock()
					putBlocks(pb)
				}
			}
		})
		b.Run("pipeline/"+name, func(b *testing.B) {
			m, _, _ := newTestManager(b)
			r, err := m.Start(context.Background(), testMeta("bench"))
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close(context.Background())
			b.SetBytes(int64(len(seq)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				r.Output(seq)
				if n++; n%every == 0 {
					chunks, err := r.flush()
					if err != nil {
						b.Fatal(err)
					}
					if err := r.index(context.Background(), chunks); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
