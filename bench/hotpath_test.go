//go:build bench

package bench

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/testenv"
)

// TestHotPath measures what a bulk transfer costs the gateway in figures
// that other processes on a shared machine do not move: read and write
// system calls per MB (from /proc/PID/io) beside CPU seconds per GB, for
// the unrecorded and the recorded user, after the idle-session memory of
// TestCompare. It is the measurement behind the bridge's hot-path work
// (issue 13, points 3 and 4); it reports and never fails on a figure.
//
//	PORTCULLIS_BIN=bin/portcullis BENCH_HOT_RUNS=3 BENCH_SESSIONS=200 \
//	  go test -tags bench -run TestHotPath -v -count=1 ./bench/
//
// BENCH_HOT_MEM_AGAIN (default 0, at most 5) repeats the idle-session
// memory measure on the same gateway, from a warm baseline.
// BENCH_HOT_RUNS (default 3, 0 for memory only) bulk runs per user, each
// BENCH_BYTES. BENCH_HOT_SEQ (default 0) runs `seq 1 BENCH_SEQ` that many
// times per user and reports gateway CPU per GB of text recorded and not,
// then profiles recorded runs for BENCH_PROFILE_SECONDS (kept in
// BENCH_PROFILE_DIR as seq.pprof when set): recording's cost on text
// (issue 13, point 2) without the rest of TestCompare.
func TestHotPath(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath, "go")
	cfg := loadConfig(t)
	runs := envInt(t, "BENCH_HOT_RUNS", 3, 0, 50)
	seqRuns := envInt(t, "BENCH_HOT_SEQ", 0, 0, 50)
	e := setup(t)
	out := os.Stdout
	fmt.Fprintf(out, "\n== gateway hot path: %s (pid %d)\n", e.bin, e.gwPID)
	printMachine(out)
	// Memory first, on a fresh gateway, as TestCompare measures it;
	// then BENCH_HOT_MEM_AGAIN more rounds on the same gateway, whose
	// baseline is warm (what a first round pays once shows as the
	// difference).
	again := envInt(t, "BENCH_HOT_MEM_AGAIN", 0, 0, 5)
	for round := range again + 1 {
		fmt.Fprintf(out, "\n-- memory: %d idle interactive sessions (round %d)\n", cfg.sessions, round+1)
		m := e.measureMemory(out, cfg.sessions)
		m.print(out)
		if round == 0 {
			fmt.Fprintln(out, m.goroutineGroups)
			fmt.Fprintln(out, m.heapTop)
		}
	}
	for _, ph := range []struct{ name, command string }{
		{"idle", "true"},
		{"idle after 1 MB of output", "head -c 1000000 /dev/zero | tr '\\0' x"},
	} {
		heap, stack, g, up := e.idleCost(cfg.sessions, ph.command)
		fmt.Fprintf(out, "per session, %s (%d up; after a GC): live heap %.1f KiB, goroutine stack %.1f KiB, goroutines %.1f\n",
			ph.name, up, heap, stack, g)
	}
	if seqRuns > 0 {
		e.seqCost(out, cfg, seqRuns)
	}
	fmt.Fprintf(out, "\n-- bulk\n")
	for _, l := range []leg{viaGateway, viaGatewayRec} {
		if runs == 0 {
			break
		}
		e.bulk(l, cfg.bytes) // warm up: first dial, pools, page faults
		before, cpuBefore := procIO(e.gwPID), procCPU(e.gwPID)
		var moved int64
		var rates []float64
		for range runs {
			r, ok := e.bulk(l, cfg.bytes)
			if !ok {
				continue
			}
			moved += r.bytes
			rates = append(rates, float64(r.bytes)/r.data.Seconds()/mb)
		}
		after, cpuAfter := procIO(e.gwPID), procCPU(e.gwPID)
		gb := float64(moved) / 1e9
		if gb == 0 {
			continue
		}
		fmt.Fprintf(out, "bulk %-16s %d x %d bytes: CPU %.2f s/GB (user %.2f, sys %.2f); syscalls per MB: read %.1f, write %.1f; MB/s %s\n",
			l, runs, cfg.bytes,
			(cpuAfter.user+cpuAfter.sys-cpuBefore.user-cpuBefore.sys)/gb,
			(cpuAfter.user-cpuBefore.user)/gb, (cpuAfter.sys-cpuBefore.sys)/gb,
			float64(after["syscr"]-before["syscr"])/(gb*1000), float64(after["syscw"]-before["syscw"])/(gb*1000),
			fmtList(rates, "%.0f"))
	}
}

// procIO reads /proc/PID/io (syscr, syscw: read and write system calls).
func procIO(pid int) map[string]int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return nil
	}
	m := map[string]int64{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := strings.Cut(string(line), ": ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err == nil {
			m[k] = n
		}
	}
	return m
}

// idleCost opens n interactive sessions whose shell first runs command,
// leaves them idle, and returns what each holds in the gateway after a
// collection: live heap and goroutine stack in KiB, and goroutines. Unlike
// resident memory these do not depend on when the collector last ran.
func (e *env) idleCost(n int, command string) (heapKiB, stackKiB, goroutines float64, up int) {
	e.memStats(true)
	before := e.memStats(true)
	g0 := e.goroutines()
	var (
		mu       sync.Mutex
		sessions []*session
		wg       sync.WaitGroup
		sem      = make(chan struct{}, openConcurrency)
	)
	defer func() { closeSessions(sessions) }()
	for range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := e.openSessionRunning(command)
			mu.Lock()
			defer mu.Unlock()
			if s != nil {
				sessions = append(sessions, s)
			}
			if err != nil {
				e.t.Log(err)
			} else {
				up++
			}
		}()
	}
	wg.Wait()
	time.Sleep(settle)
	e.memStats(true) // a sync.Pool empties over two collections
	after := e.memStats(true)
	g1 := e.goroutines()
	if up == 0 {
		return 0, 0, 0, 0
	}
	per := func(k string) float64 { return float64(after[k]-before[k]) / 1024 / float64(up) }
	return per("HeapAlloc"), per("Stack"), float64(g1-g0) / float64(up), up
}

// openSessionRunning is openSession with command typed before the marker.
func (e *env) openSessionRunning(command string) (*session, error) {
	cmd := exec.Command("ssh", e.sshArgs(viaGateway, []string{"-tt"})...)
	s := &session{cmd: cmd, out: newMarkerWriter(readyMarker), stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = s.out
	cmd.Stderr = s.stderr
	cmd.WaitDelay = 3 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	s.stdin = stdin
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	if _, err := io.WriteString(stdin, command+"; "+readyCommand); err != nil {
		return s, fmt.Errorf("write to ssh: %v", err)
	}
	select {
	case <-s.out.found:
		return s, nil
	case <-s.done:
		return s, fmt.Errorf("ssh exited before the shell answered: %v: %s", cmd.ProcessState, strings.TrimSpace(s.stderr.String()))
	case <-time.After(sessionOpenWait):
		return s, fmt.Errorf("no shell answer within %v: %s", sessionOpenWait, strings.TrimSpace(s.stderr.String()))
	}
}

// seqCost prints the gateway's CPU per GB of `seq` output, unrecorded and
// recorded (each recorded run counted until its recording has ended), and
// a profile of recorded runs.
func (e *env) seqCost(out io.Writer, cfg config, runs int) {
	command := fmt.Sprintf("seq 1 %d", cfg.seq)
	want := seqBytes(cfg.seq)
	seen := map[string]bool{}
	fmt.Fprintf(out, "\n-- text: %s (%d bytes), %d runs per user\n", command, want, runs)
	run := func(l leg) (bulkRun, bool) {
		r, ok := e.stream(l, command, want)
		if l == viaGatewayRec {
			info, err := e.waitRecordingEnded(seen)
			if err != nil {
				e.t.Errorf("recording of a %s run: %v", recordedUser, err)
				return r, false
			}
			e.removeRecordings(seen, info.ID)
		}
		return r, ok
	}
	for _, l := range []leg{viaGateway, viaGatewayRec} {
		run(l) // warm up
		var c cpuUse
		var rates []float64
		for range runs {
			before := procCPU(e.gwPID)
			r, ok := run(l)
			after := procCPU(e.gwPID)
			if !ok {
				continue
			}
			c.add(before, after, r.bytes)
			rates = append(rates, float64(r.bytes)/r.data.Seconds()/mb)
		}
		fmt.Fprintf(out, "seq %-16s CPU %.2f s/GB (user %.2f, sys %.2f per GB); MB/s %s\n",
			l, c.perGB(), c.user/(float64(c.bytes)/1e9), c.sys/(float64(c.bytes)/1e9), fmtList(rates, "%.0f"))
	}
	top, cum, _ := e.profileViews(cfg.profileSeconds, func() (bulkRun, bool) { return run(viaGatewayRec) },
		[]string{"-top", "-cum", "-nodecount=30", "-focus=internal/recording"}, "seq")
	fmt.Fprintf(out, "\n== go tool pprof -top -nodecount=25 (gateway CPU during recorded seq runs)\n%s\n", top)
	fmt.Fprintf(out, "\n== the same, -cum -focus=internal/recording\n%s\n", cum)
}
