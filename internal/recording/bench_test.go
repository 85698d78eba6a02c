package recording

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"
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

// BenchmarkFloor measures what recording `seq 1 20000000` output costs at
// the least, for comparison with the pipeline: the escaper alone (escape),
// and the file's SHA-256 and write of the already encoded events
// (hash-write), both per GB of raw output. The pipeline costs their sum
// plus its own bookkeeping and the index feed.
func BenchmarkFloor(b *testing.B) {
	raw := seqFrom(10_000_000, 8<<20) // 8-digit numbers: most of `seq 1 20000000`
	var enc []byte
	var c carry
	for p := raw; len(p) > 0; {
		n := min(len(p), 32<<10)
		enc, _ = appendEvent(enc, 1234567, 'o', &c, p[:n])
		p = p[n:]
	}
	report := func(b *testing.B, cpu0 time.Duration) {
		b.ReportMetric((cpuTime()-cpu0).Seconds()/(float64(b.N)*float64(len(raw))/1e9), "cpu-s/GB")
	}
	b.Run("escape", func(b *testing.B) {
		dst := make([]byte, 0, 3*len(raw))
		b.SetBytes(int64(len(raw)))
		cpu0 := cpuTime()
		for b.Loop() {
			var c carry
			dst = dst[:0]
			for p := raw; len(p) > 0; {
				n := min(len(p), 32<<10)
				dst, _ = appendEvent(dst, 1234567, 'o', &c, p[:n])
				p = p[n:]
			}
		}
		report(b, cpu0)
	})
	b.Run("hash-write", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "floor.cast"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(int64(len(raw)))
		cpu0 := cpuTime()
		var off int64
		for b.Loop() {
			h := sha256.New()
			for p := enc; len(p) > 0; {
				n := min(len(p), encodeChunk)
				if _, err := f.WriteAt(p[:n], off); err != nil {
					b.Fatal(err)
				}
				h.Write(p[:n])
				off += int64(n)
				p = p[n:]
			}
			if off > 1<<30 { // keep the page cache's share bounded
				if err := f.Truncate(0); err != nil {
					b.Fatal(err)
				}
				off = 0
			}
		}
		report(b, cpu0)
		b.ReportMetric(float64(len(enc))/float64(len(raw)), "file/raw")
	})
	b.Run("hash", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		cpu0 := cpuTime()
		for b.Loop() {
			h := sha256.New()
			h.Write(enc)
			h.Sum(nil)
		}
		report(b, cpu0)
	})
}
