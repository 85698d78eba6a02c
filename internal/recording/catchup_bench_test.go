package recording

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
)

// BenchmarkCatchUp measures the search index as the catch-up fills it
// (Manager.IndexFile: a recording's file, through the virtual terminal,
// into SQLite FTS5 in 4 MiB transactions) and prints the two figures of
// issue 12: indexing throughput in MB/s of terminal output, and the
// database growth per MiB of output. Two corpora: generated shell output
// (the search benchmark's, BENCH_CATCHUP_MIB, default 32, in 16
// recordings) and `seq` output (every line a new number: the worst case
// for a full-text index, BENCH_CATCHUP_SEQ_MIB, default 8, one recording).
func BenchmarkCatchUp(b *testing.B) {
	shellMiB := benchEnvInt(b, "BENCH_CATCHUP_MIB", 32, 1, 4096)
	seqMiB := benchEnvInt(b, "BENCH_CATCHUP_SEQ_MIB", 8, 1, 4096)
	fmt.Printf("\n== BenchmarkCatchUp: nproc %d, CPU %s, %s, load average at start %s\n",
		runtime.NumCPU(), cpuModel(), runtime.Version(), loadAvg())
	for _, c := range []struct {
		name string
		gen  func(dir string) (int64, []string)
	}{
		{fmt.Sprintf("shell output, %d MiB in 16 recordings", shellMiB), func(dir string) (int64, []string) {
			return writeShellCasts(b, dir, int64(shellMiB)<<20, 16)
		}},
		{fmt.Sprintf("seq output, %d MiB in 1 recording", seqMiB), func(dir string) (int64, []string) {
			return writeSeqCast(b, dir, int64(seqMiB)<<20)
		}},
	} {
		dir := b.TempDir()
		raw, ids := c.gen(filepath.Join(dir, "rec"))
		ctx := context.Background()
		dbPath := filepath.Join(dir, "portcullis.db")
		st, err := sqlite.Open(ctx, dbPath)
		if err != nil {
			b.Fatal(err)
		}
		m, err := NewManager(filepath.Join(dir, "rec"), st, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i, id := range ids {
			if err := st.CreateRecording(ctx, store.Recording{ID: id, User: "u", Target: "t",
				StartedAt: time.Unix(int64(i), 0)}); err != nil {
				b.Fatal(err)
			}
			if err := st.FinishRecording(ctx, id, store.RecordingEnded, time.Unix(int64(i)+1, 0), 0, ""); err != nil {
				b.Fatal(err)
			}
		}
		before := dbSize(b, dbPath)
		cpu0 := cpuTime()
		start := time.Now()
		for _, id := range ids {
			if err := m.IndexFile(ctx, store.Recording{ID: id}); err != nil {
				b.Fatal(err)
			}
		}
		took := time.Since(start)
		cpu := cpuTime() - cpu0
		grew := dbSize(b, dbPath) - before
		st.Close()
		fmt.Printf("  %-40s %6.2f MB/s of output (%.2f MB per CPU second), index %.2f MiB per MiB of output (%.1f MiB in %s, CPU %s)\n",
			c.name, float64(raw)/took.Seconds()/1e6, float64(raw)/cpu.Seconds()/1e6, float64(grew)/float64(raw),
			float64(raw)/(1<<20), took.Round(time.Millisecond), cpu.Round(time.Millisecond))
	}
	fmt.Printf("  load average at end %s\n", loadAvg())
}

// cpuTime returns the CPU time (user and system) this process has used:
// on a shared machine, MB per CPU second is the figure that other load
// does not move much.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dbSize returns the database's size once its WAL is checkpointed into it.
func dbSize(b *testing.B, path string) int64 {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// writeCast writes one recording's file through a Manager on the
// in-memory store (its live index is not what is measured).
func writeCast(b *testing.B, m *Manager, id string, cols, rows int, blocks func(emit func([]byte))) {
	r, err := m.Start(context.Background(), Meta{ID: id, User: "u", Target: "t", Account: "a",
		Action: "shell", Width: cols, Height: rows, Term: "xterm"})
	if err != nil {
		b.Fatal(err)
	}
	blocks(func(p []byte) {
		r.Output(p)
		if _, err := r.flush(); err != nil {
			b.Fatal(err)
		}
	})
	if _, _, err := r.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

func writeShellCasts(b *testing.B, dir string, total int64, n int) (int64, []string) {
	m, err := NewManager(dir, newFakeStore(), nil)
	if err != nil {
		b.Fatal(err)
	}
	var raw int64
	var ids []string
	for i := range n {
		id := fmt.Sprintf("shell-%02d", i)
		rng := rand.New(rand.NewPCG(uint64(i), 0x5eed))
		size := total / int64(n)
		g := newShellGen(rng, i, n, size)
		writeCast(b, m, id, g.cols, g.rows, func(emit func([]byte)) {
			for produced := int64(0); produced < size; {
				block := g.command(produced, min(size-produced, 64<<10))
				produced += int64(len(block))
				raw += int64(len(block))
				emit(block)
			}
		})
		ids = append(ids, id)
	}
	return raw, ids
}

func writeSeqCast(b *testing.B, dir string, total int64) (int64, []string) {
	m, err := NewManager(dir, newFakeStore(), nil)
	if err != nil {
		b.Fatal(err)
	}
	var raw int64
	writeCast(b, m, "seq", 80, 24, func(emit func([]byte)) {
		var buf bytes.Buffer
		for i := 1; raw < total; i++ {
			fmt.Fprintf(&buf, "%d\r\n", i)
			if buf.Len() >= 64<<10 {
				raw += int64(buf.Len())
				emit(buf.Bytes())
				buf.Reset()
			}
		}
	})
	return raw, []string{"seq"}
}
