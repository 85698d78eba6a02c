//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/testenv"
)

// TestRecordingS3 measures what keeping recordings in an S3 store costs
// beside keeping them on the local disk, in one run: the same gateway and
// target, `seq 1 BENCH_SEQ` (default 20000000, about 169 MB) unrecorded
// and recorded, BENCH_S3_PAIRS times (default 3) with recordings_store
// local and then with a real S3 server (Versity's gateway on loopback).
// Each run's gateway CPU is counted from the client's start until its
// recording has ended and, with S3, has been shipped whole (the segments
// shipped while it ran, the whole object, the segments deleted); the S3
// server's own CPU is printed beside it. Each recording is deleted after
// it is measured, so that the search index's catch-up (deferred work that
// costs far more than recording, measured by TestCompare) does not run
// into the next measurement. It reports; it never fails on a figure.
//
//	go test -tags bench -run TestRecordingS3 -v -count=1 -timeout 30m ./bench/
func TestRecordingS3(t *testing.T) {
	testenv.RequireRoot(t)
	seq := envInt(t, "BENCH_SEQ", 20000000, 1000, 1<<30)
	pairs := envInt(t, "BENCH_S3_PAIRS", 3, 1, 20)
	s3 := testenv.StartS3(t, "rec")
	// The gateway process inherits them: the standard AWS variables.
	t.Setenv("AWS_ACCESS_KEY_ID", s3.Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.Secret)
	e := setup(t)
	want := seqBytes(seq)
	command := fmt.Sprintf("seq 1 %d", seq)

	type modeResult struct {
		name                  string
		unrec, rec, s3CPU     []float64 // CPU seconds per GB, per run
		recWall, unrecWall    []float64 // MB/s, whole command
		shipWait              []time.Duration
		objectBytes, recBytes int64
	}
	run := func(name string, shipped bool) modeResult {
		res := modeResult{name: name}
		seen := map[string]bool{}
		for i := 0; i < pairs; i++ {
			c0 := procCPU(e.gwPID)
			r, ok := e.stream(viaGateway, command, want)
			c1 := procCPU(e.gwPID)
			if !ok {
				t.Fatalf("%s: unrecorded run failed", name)
			}
			res.unrec = append(res.unrec, cpuPerGB(c0, c1, want))
			res.unrecWall = append(res.unrecWall, float64(want)/mb/r.wall.Seconds())

			v0 := procCPU(s3.PID())
			c0 = procCPU(e.gwPID)
			r, ok = e.stream(viaGatewayRec, command, want)
			if !ok {
				t.Fatalf("%s: recorded run failed", name)
			}
			exited := time.Now()
			rec, err := e.waitRecordingEnded(seen)
			if err != nil {
				t.Fatal(err)
			}
			id, size := rec.ID, rec.Size
			if shipped {
				obj := filepath.Join(s3.Dir, "rec", "casts", id+".cast")
				local := filepath.Join(e.dataDir, "recordings", id+".cast")
				deadline := time.Now().Add(5 * time.Minute)
				for {
					fi, err := os.Stat(obj)
					_, lerr := os.Stat(local)
					if err == nil && fi.Size() == size && os.IsNotExist(lerr) {
						res.objectBytes = fi.Size()
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("recording %s not shipped whole after 5 minutes", id)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			res.shipWait = append(res.shipWait, time.Since(exited))
			c1 = procCPU(e.gwPID)
			v1 := procCPU(s3.PID())
			res.rec = append(res.rec, cpuPerGB(c0, c1, want))
			res.s3CPU = append(res.s3CPU, cpuPerGB(v0, v1, want))
			res.recWall = append(res.recWall, float64(want)/mb/r.wall.Seconds())
			res.recBytes = size
			e.cli("", "recordings", "rm", "--yes", id)
		}
		return res
	}
	local := run("local", false)
	e.stopGateway()
	e.serveArgs = []string{"--recordings-store", s3.URL("rec", "casts")}
	e.startGateway()
	remote := run("s3", true)

	out := os.Stdout
	fmt.Fprintf(out, "\nRecording in S3 vs local (issue 21): `%s` (%d bytes), %d pairs each, gateway CPU s per GB of output (median)\n", command, want, pairs)
	fmt.Fprintf(out, "  %-6s %12s %12s %14s %12s %12s %14s %12s\n", "store", "unrec CPU", "rec CPU", "rec overhead", "unrec MB/s", "rec MB/s", "S3 server CPU", "end->stored")
	for _, m := range []modeResult{local, remote} {
		fmt.Fprintf(out, "  %-6s %12.2f %12.2f %13.2fs %12.1f %12.1f %13.2fs %12v\n", m.name, median(m.unrec), median(m.rec),
			median(m.rec)-median(m.unrec), median(m.unrecWall), median(m.recWall), max(0, median(m.s3CPU)), medianDur(m.shipWait).Round(time.Millisecond))
	}
	fmt.Fprintf(out, "  last recording: %d bytes (local), %d bytes (s3; the object in the bucket %d bytes)\n", local.recBytes, remote.recBytes, remote.objectBytes)
	fmt.Fprintf(out, "  S3 costs the gateway %.2f CPU s per GB of output more than local recording (recorded minus recorded)\n",
		median(remote.rec)-median(local.rec))
}

func cpuPerGB(a, b cpuUse, n int64) float64 {
	return (b.user + b.sys - a.user - a.sys) / (float64(n) / 1e9)
}

func medianDur(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
