//go:build bench

package bench

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSetup measures only connection setup, for working on it without the
// whole comparison: `ssh ... true` in alternating pairs (BENCH_SETUP_PAIRS),
// then new sessions per second at concurrency 8 (BENCH_RATE_SESSIONS per
// leg, default 80, in alternating rounds of 8 per leg), with the gateway's
// CPU seconds per session read from /proc. It reports; it never fails on a
// timing.
//
//	go test -tags bench -run TestSetup -v -count=1 ./bench/
func TestSetup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs sshd and creates a unix user")
	}
	cfg := loadConfig(t)
	total := envInt(t, "BENCH_RATE_SESSIONS", 80, 8, 4000)
	e := setup(t)
	out := os.Stdout

	gw, dir := e.measureSetup(cfg.setupPairs)
	sgw, sdir := median(ms(gw)), median(ms(dir))
	fmt.Fprintf(out, "setup ms, median of %d: gateway %.1f direct %.1f ratio %.2f\n", len(gw), sgw, sdir, ratio(sgw, sdir))
	fmt.Fprintf(out, "  gateway %s\n  direct  %s\n", fmtList(sorted(ms(gw)), "%.0f"), fmtList(sorted(ms(dir)), "%.0f"))

	// Sessions per second: rounds of `rate` sessions per leg, alternating
	// which leg goes first, each round run at concurrency 8.
	const concurrency = 8
	var wall [2]time.Duration
	var n [2]int
	var gwCPU float64
	for round := 0; n[0] < total; round++ {
		order := []leg{viaGateway, direct}
		if round%2 == 1 {
			order = []leg{direct, viaGateway}
		}
		for _, l := range order {
			i := 0
			if l == direct {
				i = 1
			}
			before := procCPU(e.gwPID)
			d, ok := e.burst(l, concurrency, concurrency)
			after := procCPU(e.gwPID)
			wall[i] += d
			n[i] += ok
			if l == viaGateway {
				gwCPU += after.user + after.sys - before.user - before.sys
			}
		}
	}
	rgw, rdir := float64(n[0])/wall[0].Seconds(), float64(n[1])/wall[1].Seconds()
	fmt.Fprintf(out, "sessions/s at concurrency %d: gateway %.1f (%d) direct %.1f (%d) ratio %.2f; gateway CPU %.2f ms per session\n",
		concurrency, rgw, n[0], rdir, n[1], ratio(rgw, rdir), 1000*gwCPU/float64(max(n[0], 1)))

	// Where the gateway's CPU goes during a burst of short sessions: a
	// profile of BENCH_PROFILE_SECONDS while bursts of 8 run back to back.
	if secs := envInt(t, "BENCH_PROFILE_SECONDS", 0, 0, 120); secs > 0 {
		top, cum, _ := e.profileViews(secs, func() (bulkRun, bool) {
			_, ok := e.burst(viaGateway, concurrency, concurrency)
			return bulkRun{}, ok > 0
		}, []string{"-top", "-cum", "-nodecount=40"}, "setup")
		fmt.Fprintf(out, "-- CPU profile during bursts of short sessions\n%s\n-- cumulative\n%s\n", top, cum)
	}
}

// burst runs count `ssh ... true` on l, conc at a time, and returns the
// wall time and how many succeeded.
func (e *env) burst(l leg, count, conc int) (time.Duration, int) {
	var ok atomic.Int64
	var wg sync.WaitGroup
	next := make(chan struct{}, count)
	for range count {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if _, good := e.sshTrue(l); good {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), int(ok.Load())
}

func sorted(v []float64) []float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v
}
