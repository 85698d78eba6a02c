package recording

import (
	"context"
	"testing"
)

// BenchmarkOutputText measures recording `seq`-like output in 32 KiB
// chunks (the SSH packet size):
//
//   - output: Output alone, the cost on the session's path (a copy);
//   - pipeline: Output and the flusher's work (UTF-8 and JSON encoding,
//     the write, SHA-256, the index feed), all on one goroutine: the total
//     CPU recording costs per byte;
//   - pipeline-prose: the same for log-like output with long lines;
//   - pipeline-binary: the same for `head -c N /dev/zero` (a binary
//     burst: its ends recorded, its middle only classified and held).
//
// The pipelines report cpu-s/GB, the process's CPU per GB of output,
// the figure to compare on a shared machine.
func BenchmarkOutputText(b *testing.B) {
	seq := seqText(32 << 10)
	prose := proseText(32 << 10)

	b.Run("output", func(b *testing.B) {
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
			if n++; n%64 == 0 {
				// What the flusher would take away, without its work.
				r.mu.Lock()
				pb := r.pending
				r.pending, r.pendLen = nil, 0
				r.kicked = false
				r.mu.Unlock()
				putBlocks(pb)
			}
		}
	})
	for _, bc := range []struct {
		name string
		data []byte
	}{{"pipeline", seq}, {"pipeline-prose", prose}, {"pipeline-binary", make([]byte, 32<<10)}} {
		b.Run(bc.name, func(b *testing.B) {
			m, _, _ := newTestManager(b)
			r, err := m.Start(context.Background(), testMeta("bench"))
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close(context.Background())
			b.SetBytes(int64(len(bc.data)))
			b.ReportAllocs()
			n := 0
			cpu0 := cpuTime()
			for b.Loop() {
				r.Output(bc.data)
				if n++; n%64 == 0 { // every 2 MiB, as Run would under load
					chunks, err := r.flush()
					if err != nil {
						b.Fatal(err)
					}
					if err := r.index(context.Background(), chunks); err != nil {
						b.Fatal(err)
					}
				}
			}
			// CPU rather than wall time: robust to a machine shared with
			// other work (sys time is the kernel's copy into the page
			// cache, part of what recording costs).
			b.ReportMetric((cpuTime()-cpu0).Seconds()/(float64(b.N)*float64(len(bc.data))/1e9), "cpu-s/GB")
		})
	}
}
