//go:build bench

package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/fdlimit"
)

// Bounds of the scale section, so that a gateway that stops answering
// cannot make the run unbounded.
const (
	heldOpenWait  = 60 * time.Second // one held session until its shell answered
	heldOpenTotal = 8 * time.Minute  // all held sessions of one level
	// runBudget is how long the whole comparison may run before the scale
	// section stops opening sessions, so that it ends with its report
	// within go test's -timeout (25m in the Makefile), closing included.
	runBudget        = 20 * time.Minute
	heldCloseWait    = 2 * time.Minute  // until the gateway lists no session after closing
	shortTimeout     = 30 * time.Second // one short session
	shortTotal       = 6 * time.Minute  // all short sessions of both legs
	shortBlocks      = 8                // blocks per leg, alternating legs, so drift hits both
	leakSlackG       = 10               // goroutines over the baseline still "back"
	leakSlackFD      = 10               // descriptors over the baseline still "back"
	leakHeapFraction = 0.25             // of the growth: live heap after close and a GC within baseline + this
	leakHeapFloor    = 4 << 20          // bytes of live heap over the baseline that are never a leak
	ptyMargin        = 512              // ptys left for the rest of the machine
)

// heldResult is one level of the scale section: n interactive sessions
// held open at once through the gateway, then closed.
type heldResult struct {
	n, up                 int
	open, close           time.Duration
	rss0, rss1, rssGC     int64  // KiB: before, all up, all up after a forced GC
	rssClosed, rssClosedG int64  // KiB: after closing, and after a forced GC
	heap0, heap1, heapEnd int64  // bytes of live heap (HeapAlloc) after a forced GC: before, all up, closed
	g0, g1, gClosed       int    // gateway goroutines
	fd0, fd1, fdClosed    int    // gateway open descriptors
	live0, live1, liveEnd int    // sessions the gateway lists (sessions ls)
	polite, dropped       int    // closed with exit and EOF / by dropping the TCP connection
	openCPU               cpuUse // the gateway's CPU while the sessions were being opened
	failures              []string
	profTop               string // the gateway's CPU while the sessions were being opened
}

func (h heldResult) perSession(a, b int64) float64 { return perSession(b-a, h.up) }

// leakOK says whether goroutines, descriptors and the gateway's own list
// of sessions came back to the baseline, and its live heap near it. RSS
// is printed but not judged: the Go runtime returns freed pages to the
// system over minutes, so RSS after close measures the scavenger's pace
// more than a leak; the live heap after a GC is what a leak would grow.
func (h heldResult) leakOK() bool {
	growth := max(h.heap1-h.heap0, 0)
	return h.live0 >= 0 && h.liveEnd == h.live0 && h.gClosed >= 0 && h.gClosed <= h.g0+leakSlackG &&
		h.fdClosed >= 0 && h.fdClosed <= h.fd0+leakSlackFD &&
		h.heapEnd > 0 && float64(h.heapEnd) <= float64(h.heap0)+max(leakHeapFloor, leakHeapFraction*float64(growth))
}

// shortResult is the short-session rate on both legs.
type shortResult struct {
	n, conc           int
	gwRates, dirRates []float64 // sessions/s per block
	gwOK, dirOK       int
	gwCPU             cpuUse // gateway CPU over its blocks (bytes unused)
	failures          []string
	profTop           string // the gateway's CPU during gateway blocks run back to back
}

func (s shortResult) medians() (gw, dir float64) { return median(s.gwRates), median(s.dirRates) }

// clientConfig is an x/crypto client with the algorithms forced on the
// client legs, as ssh(1) gets them in the other sections.
func clientConfig(user string, signer ssh.Signer, hostKey ssh.PublicKey) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   ssh.FixedHostKey(hostKey),
		HostKeyAlgorithms: []string{hostKey.Type()},
		Config:            ssh.Config{KeyExchanges: []string{benchKex}, Ciphers: []string{benchCipher}},
		Timeout:           shortTimeout,
	}
}

// legClient returns where leg l connects and how.
func (e *env) legClient(l leg) (addr string, cfg *ssh.ClientConfig) {
	if l == direct {
		return e.sshd.Addr, clientConfig(e.user, e.key.Signer, e.sshd.HostKey)
	}
	return e.gwAddr, clientConfig(gatewayUser+"~"+targetName, e.key.Signer, e.gwHostKey)
}

// dialLeg opens an SSH connection on leg l with every step, handshake
// included, under deadline.
func (e *env) dialLeg(l leg, deadline time.Time) (*ssh.Client, net.Conn, error) {
	addr, cfg := e.legClient(l)
	nc, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	_ = nc.SetDeadline(deadline)
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("%s handshake: %w", l, err)
	}
	return ssh.NewClient(c, chans, reqs), nc, nil
}

// heldSession is one interactive session held open: a pty and a shell.
type heldSession struct {
	client *ssh.Client
	sess   *ssh.Session
	stdin  io.WriteCloser
}

// openHeld opens one interactive session through the gateway, in this
// process: a pty, a shell, and the ready marker echoed back.
func (e *env) openHeld() (*heldSession, error) {
	deadline := time.Now().Add(heldOpenWait)
	client, nc, err := e.dialLeg(viaGateway, deadline)
	if err != nil {
		return nil, err
	}
	h := &heldSession{client: client}
	fail := func(step string, err error) (*heldSession, error) {
		client.Close()
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	if h.sess, err = client.NewSession(); err != nil {
		return fail("session", err)
	}
	if err := h.sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
		return fail("pty", err)
	}
	if h.stdin, err = h.sess.StdinPipe(); err != nil {
		return fail("stdin", err)
	}
	stdout, err := h.sess.StdoutPipe()
	if err != nil {
		return fail("stdout", err)
	}
	if err := h.sess.Shell(); err != nil {
		return fail("shell", err)
	}
	if _, err := io.WriteString(h.stdin, readyCommand); err != nil {
		return fail("type", err)
	}
	// The connection's deadline bounds this read: past it the connection
	// fails and the channel reads EOF. The pty echoes the typed line, so
	// only the shell's output holds the computed marker.
	w := newMarkerWriter(readyMarker)
	buf := make([]byte, 4096)
	for !w.seen {
		k, err := stdout.Read(buf)
		w.Write(buf[:k])
		if err != nil && !w.seen {
			return fail("wait for the shell", err)
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return h, nil
}

// measureHeld opens n sessions with conc handshakes at a time, measures
// the gateway with all of them up, closes them (half with exit and EOF,
// half by dropping the connection) and measures again.
func (e *env) measureHeld(out io.Writer, n, conc, profileSeconds int, runDeadline time.Time) heldResult {
	h := heldResult{n: n}
	time.Sleep(settle)
	h.heap0 = e.liveHeap()
	h.rss0, h.g0, h.fd0, h.live0 = vmRSS(e.gwPID), e.goroutines(), fdCount(e.gwPID), e.liveSessions()

	var (
		mu       sync.Mutex
		sessions []*heldSession
		wg       sync.WaitGroup
		sem      = make(chan struct{}, conc)
	)
	prof := e.profileDuring(profileSeconds, fmt.Sprintf("held-%d", n))
	cpu0 := procCPU(e.gwPID)
	start := time.Now()
	deadline := start.Add(heldOpenTotal)
	if deadline.After(runDeadline) {
		deadline = runDeadline
	}
	for i := range n {
		if time.Now().After(deadline) {
			h.failures = append(h.failures, fmt.Sprintf("gave up opening after %v at session %d (the bound of a level, or of the whole run)", time.Since(start).Round(time.Second), i))
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := e.openHeld()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				h.failures = append(h.failures, err.Error())
				return
			}
			sessions = append(sessions, s)
		}()
	}
	wg.Wait()
	h.open = time.Since(start)
	h.openCPU.add(cpu0, procCPU(e.gwPID), 0)
	h.up = len(sessions)
	h.profTop = prof()
	fmt.Fprintf(out, "%d of %d sessions up in %v (%.0f/s); settling %v\n", h.up, n, h.open.Round(time.Millisecond), float64(h.up)/h.open.Seconds(), settle)

	time.Sleep(settle)
	h.rss1, h.g1, h.fd1, h.live1 = vmRSS(e.gwPID), e.goroutines(), fdCount(e.gwPID), e.liveSessions()
	h.heap1 = e.liveHeap()
	time.Sleep(settle)
	h.rssGC = vmRSS(e.gwPID)

	start = time.Now()
	h.polite, h.dropped = closeHeld(sessions)
	sessions = nil
	// The gateway's own list of sessions is the end of its cleanup:
	// each session leaves it after its end event is written.
	end := time.Now().Add(heldCloseWait)
	for h.liveEnd = e.liveSessions(); h.liveEnd != h.live0 && time.Now().Before(end); h.liveEnd = e.liveSessions() {
		time.Sleep(250 * time.Millisecond)
	}
	h.close = time.Since(start)
	time.Sleep(settle)
	h.rssClosed, h.gClosed, h.fdClosed = vmRSS(e.gwPID), e.goroutines(), fdCount(e.gwPID)
	h.heapEnd = e.liveHeap()
	time.Sleep(settle)
	h.rssClosedG = vmRSS(e.gwPID)
	return h
}

// closeHeld ends the sessions: even ones with exit and EOF as a user
// would, odd ones by dropping the TCP connection as a vanished client
// would, so that both of the gateway's cleanup paths are exercised.
func closeHeld(sessions []*heldSession) (polite, dropped int) {
	var wg sync.WaitGroup
	for i, s := range sessions {
		if i%2 == 1 {
			s.client.Close()
			dropped++
			continue
		}
		polite++
		_, _ = io.WriteString(s.stdin, "exit\n")
		_ = s.stdin.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.sess.Wait()
		}()
	}
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(heldCloseWait):
	}
	// Closing the client ends any Wait still pending.
	for _, s := range sessions {
		s.client.Close()
	}
	<-waited
	return polite, dropped
}

// measureShort runs n short sessions (`true`, like `ssh host true`) on
// each leg with conc at a time, in shortBlocks blocks per leg alternating
// ABBA, and returns the rate of each block.
func (e *env) measureShort(n, conc, profileSeconds int) shortResult {
	r := shortResult{n: n, conc: conc}
	block := max(1, n/shortBlocks)
	deadline := time.Now().Add(shortTotal)
	for _, l := range []leg{viaGateway, direct} { // warm-up
		e.shortBlock(l, conc, conc, deadline)
	}
	for i := 0; r.gwOK+r.dirOK < 2*n && time.Now().Before(deadline); i++ {
		order := []leg{viaGateway, direct}
		if i%2 == 1 {
			order = []leg{direct, viaGateway}
		}
		for _, l := range order {
			done := r.gwOK
			if l == direct {
				done = r.dirOK
			}
			k := min(block, n-done)
			if k <= 0 {
				continue
			}
			before := procCPU(e.gwPID)
			start := time.Now()
			ok, fails := e.shortBlock(l, k, conc, deadline)
			rate := float64(ok) / time.Since(start).Seconds()
			after := procCPU(e.gwPID)
			r.failures = append(r.failures, fails...)
			if l == viaGateway {
				r.gwOK += ok
				r.gwRates = append(r.gwRates, rate)
				r.gwCPU.add(before, after, 0)
			} else {
				r.dirOK += ok
				r.dirRates = append(r.dirRates, rate)
			}
			if ok == 0 { // a broken leg must not spin until the deadline
				return r
			}
		}
	}
	r.profTop, _, _ = e.profileViews(profileSeconds, func() (bulkRun, bool) {
		ok, _ := e.shortBlock(viaGateway, conc, conc, time.Now().Add(shortTimeout))
		return bulkRun{}, ok > 0
	}, nil, "short")
	return r
}

// shortBlock runs k short sessions on leg l, conc at a time.
func (e *env) shortBlock(l leg, k, conc int, deadline time.Time) (ok int, fails []string) {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, conc)
	)
	for range k {
		if time.Now().After(deadline) {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := e.shortSession(l)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails = append(fails, fmt.Sprintf("%s: %v", l, err))
				return
			}
			ok++
		}()
	}
	wg.Wait()
	return ok, fails
}

// shortSession connects, runs `true` and disconnects.
func (e *env) shortSession(l leg) error {
	client, _, err := e.dialLeg(l, time.Now().Add(shortTimeout))
	if err != nil {
		return err
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	if err := sess.Run("true"); err != nil {
		return fmt.Errorf("true: %w", err)
	}
	return nil
}

// liveHeap asks the gateway to collect garbage (the heap profile with
// gc=1) and returns its live heap in bytes (HeapAlloc), or -1. It asks
// twice: a sync.Pool keeps its buffers through one collection.
func (e *env) liveHeap() int64 {
	e.memStats(true)
	if v, ok := e.memStats(true)["HeapAlloc"]; ok {
		return v
	}
	return -1
}

// fdCount returns how many descriptors pid has open, or -1.
func fdCount(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// liveSessions returns how many sessions the gateway lists as running
// (`portcullis sessions ls --json`), or -1.
func (e *env) liveSessions() int {
	b, err := e.cliOutput("sessions", "ls", "--json")
	if err != nil {
		e.t.Logf("sessions ls: %v", err)
		return -1
	}
	var list []json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil {
		e.t.Logf("sessions ls --json: %v", err)
		return -1
	}
	return len(list)
}

// cliOutput is cli without failing the test: the scale section reports
// what broke rather than stopping the run.
func (e *env) cliOutput(args ...string) ([]byte, error) {
	var out, errb strings.Builder
	err := e.cliRun(cliTimeout, &out, &errb, args...)
	if err != nil {
		return nil, fmt.Errorf("portcullis %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return []byte(out.String()), nil
}

// ensurePTYs raises kernel.pty.max when it cannot hold want more ptys
// (the target sshd gives each held session one), and returns a function
// that puts the old value back. It says what it did.
func ensurePTYs(out io.Writer, want int) (restore func(), err error) {
	const maxPath, nrPath = "/proc/sys/kernel/pty/max", "/proc/sys/kernel/pty/nr"
	readInt := func(p string) (int, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, err
		}
		var v int
		_, err = fmt.Sscan(strings.TrimSpace(string(b)), &v)
		return v, err
	}
	limit, err := readInt(maxPath)
	if err != nil {
		return func() {}, fmt.Errorf("read %s: %w", maxPath, err)
	}
	used, err := readInt(nrPath)
	if err != nil {
		return func() {}, fmt.Errorf("read %s: %w", nrPath, err)
	}
	need := used + want + ptyMargin
	if need <= limit {
		return func() {}, nil
	}
	if err := os.WriteFile(maxPath, []byte(fmt.Sprint(need)), 0o644); err != nil {
		return func() {}, fmt.Errorf("raise %s from %d to %d: %w", maxPath, limit, need, err)
	}
	fmt.Fprintf(out, "kernel.pty.max raised from %d to %d for this run (%d ptys in use); put back at the end\n", limit, need, used)
	return func() { _ = os.WriteFile(maxPath, []byte(fmt.Sprint(limit)), 0o644) }, nil
}

func (h heldResult) print(out io.Writer) {
	fmt.Fprintf(out, "  %d held: %d up in %v (%.0f/s)", h.n, h.up, h.open.Round(time.Millisecond), float64(h.up)/max(h.open.Seconds(), 1e-9))
	fmt.Fprintf(out, "; closed (%d exit+EOF, %d dropped) and gone from the gateway's list in %v\n", h.polite, h.dropped, h.close.Round(time.Millisecond))
	fmt.Fprintf(out, "    gateway CPU while opening: %.2f CPU-s = %.2f CPU-ms per session (user %.2f, sys %.2f)\n",
		h.openCPU.user+h.openCPU.sys, 1000*(h.openCPU.user+h.openCPU.sys)/float64(max(h.up, 1)), h.openCPU.user, h.openCPU.sys)
	fmt.Fprintf(out, "    VmRSS KiB: before %d, all up %d (%.1f/session), after a GC %d (%.1f/session), closed %d, closed+GC %d\n",
		h.rss0, h.rss1, h.perSession(h.rss0, h.rss1), h.rssGC, h.perSession(h.rss0, h.rssGC), h.rssClosed, h.rssClosedG)
	fmt.Fprintf(out, "    goroutines: before %d, all up %d (%.2f/session), closed %d\n",
		h.g0, h.g1, h.perSession(int64(h.g0), int64(h.g1)), h.gClosed)
	fmt.Fprintf(out, "    open descriptors: before %d, all up %d (%.2f/session), closed %d\n",
		h.fd0, h.fd1, h.perSession(int64(h.fd0), int64(h.fd1)), h.fdClosed)
	fmt.Fprintf(out, "    live heap after a GC, KiB: before %d, all up %d (%.1f/session), closed %d\n",
		h.heap0>>10, h.heap1>>10, h.perSession(h.heap0>>10, h.heap1>>10), h.heapEnd>>10)
	fmt.Fprintf(out, "    sessions the gateway lists: before %d, all up %d, closed %d\n", h.live0, h.live1, h.liveEnd)
	fmt.Fprintf(out, "    leak check (sessions back to %d, goroutines <= +%d, fds <= +%d, live heap <= before + max(%d MiB, %.0f%% of the growth); RSS not judged): %s\n",
		h.live0, leakSlackG, leakSlackFD, leakHeapFloor>>20, 100*leakHeapFraction, verdict(h.leakOK(), h.up > 0))
	printFailures(out, h.failures)
}

func (s shortResult) print(out io.Writer) {
	gw, dir := s.medians()
	fmt.Fprintf(out, "  short sessions (`true`, concurrency %d): gateway %d ok, direct %d ok of %d each\n", s.conc, s.gwOK, s.dirOK, s.n)
	fmt.Fprintf(out, "    sessions/s per block  gateway %s (median %.1f)\n", fmtList(s.gwRates, "%.1f"), gw)
	fmt.Fprintf(out, "                          direct  %s (median %.1f)\n", fmtList(s.dirRates, "%.1f"), dir)
	if s.gwOK > 0 {
		fmt.Fprintf(out, "    gateway CPU: %.2f CPU-s for %d sessions = %.2f CPU-ms per session (user %.2f, sys %.2f)\n",
			s.gwCPU.user+s.gwCPU.sys, s.gwOK, 1000*(s.gwCPU.user+s.gwCPU.sys)/float64(s.gwOK), s.gwCPU.user, s.gwCPU.sys)
	}
	printFailures(out, s.failures)
}

// printFailures shows distinct failures with their counts, the most
// frequent first.
func printFailures(out io.Writer, failures []string) {
	if len(failures) == 0 {
		return
	}
	count := map[string]int{}
	var keys []string
	for _, f := range failures {
		if count[f] == 0 {
			keys = append(keys, f)
		}
		count[f]++
	}
	slices.SortStableFunc(keys, func(a, b string) int { return count[b] - count[a] })
	fmt.Fprintf(out, "    %d failures, %d distinct:\n", len(failures), len(keys))
	for i, k := range keys {
		if i == 10 {
			fmt.Fprintf(out, "      ... %d more distinct\n", len(keys)-10)
			break
		}
		fmt.Fprintf(out, "      (%d) %s\n", count[k], k)
	}
}

// cliRun runs the portcullis CLI against the gateway with
// PORTCULLIS_DATA_DIR, bounded by timeout.
func (e *env) cliRun(timeout time.Duration, stdout, stderr io.Writer, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = append(os.Environ(), "PORTCULLIS_DATA_DIR="+e.dataDir)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd.Run()
}

// profileDuring starts a CPU profile of the gateway for seconds and
// returns a function that waits for it and returns `go tool pprof -top`
// of it, for work that is one long call rather than repeatable runs. With
// BENCH_PROFILE_DIR set the profile is kept there as NAME.pprof.
func (e *env) profileDuring(seconds int, name string) (top func() string) {
	file := filepath.Join(e.clientDir, name+".pprof")
	if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			e.t.Fatal(err)
		}
		file = filepath.Join(dir, name+".pprof")
	}
	done := make(chan error, 1)
	go func() {
		c := &http.Client{Timeout: time.Duration(seconds)*time.Second + time.Minute}
		resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", e.diagAddr, seconds))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("CPU profile: %s", resp.Status)
			return
		}
		f, err := os.Create(file)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		done <- errors.Join(err, f.Close())
	}()
	return func() string {
		if err := <-done; err != nil {
			return "(no profile: " + err.Error() + ")"
		}
		return e.pprof(file, "-top", "-nodecount=25")
	}
}

// raiseFiles lifts this process's limit of open files so that it and what
// it starts (the gateway, sshd) can hold need descriptors: the soft limit
// to the hard one (fdlimit.Raise), and as root the hard limit too when it
// is lower than need. It returns the soft limit afterwards.
func raiseFiles(need int) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if lim.Max < uint64(need) && os.Geteuid() == 0 {
		raised := syscall.Rlimit{Cur: uint64(need), Max: uint64(need)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return lim.Cur, fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", need, err)
		}
	}
	soft, _, err := fdlimit.Raise()
	return soft, err
}
