//go:build bench

package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/recording"
)

// targetRecRatio is the target for recording's cost on text-heavy
// output: recorded throughput over unrecorded, at least.
const targetRecRatio = 0.95

// recordingEndWait bounds the wait, after the client exited, for the
// gateway to close a recording (final flush, fsync, store update).
const recordingEndWait = 2 * time.Minute

// recResult is the recording measurement: the same `seq` through the
// gateway as benchrec (recorded) and as bench (not), alternating.
type recResult struct {
	seq              int
	want             int64 // bytes seq prints
	rec, unrec       []bulkRun
	cpuRec, cpuUnrec cpuUse
	// The CPU of every process on the path (ssh, the target's sshd and
	// seq, the gateway) over the timed runs, recorded and not.
	pathRec, pathUnrec pathUse
	sizes              []int64         // recording file sizes of the timed recorded runs
	closeWait          []time.Duration // client exit to recording ended, timed recorded runs
	medRec, medUnrec   float64         // data-phase MB/s
	wallRec            float64         // whole-command MB/s
	wallUnrec          float64
	ratio              float64
	verify             string // what decoding one recording found
	profTop            string
	profRecording      string
	profRuns           []bulkRun
	profCPU            cpuUse
	rssBase            int64 // gateway VmRSS before the runs, KiB
	rssUnrec           int64 // highest VmRSS during the unrecorded warm-up, before any recorded run, KiB
	rssRec             int64 // highest VmRSS during the recorded runs, KiB
	// The search index a recording's catch-up builds after it ended,
	// with no session running: gateway CPU, wall time, and whether it
	// finished within indexWait.
	indexCPU  cpuUse
	indexWall time.Duration
	indexDone bool
	// Bulk binary output (head -c N /dev/zero) recorded and not: the
	// recording of a binary burst keeps its ends and classifies the rest.
	bulkRec, bulkUnrec       []bulkRun
	cpuBulkRec, cpuBulkUnrec cpuUse
}

// indexWait bounds the wait for one recording's catch-up index.
const indexWait = 4 * time.Minute

// measureRecording alternates recorded and unrecorded `seq 1 N` runs after
// one untimed warm-up each, then profiles the gateway during recorded runs.
// Recordings are deleted as it goes, so the disk holds at most a few.
func (e *env) measureRecording(out io.Writer, cfg config) recResult {
	res := recResult{seq: cfg.seq, want: seqBytes(cfg.seq)}
	command := fmt.Sprintf("seq 1 %d", cfg.seq)
	seen := map[string]bool{}

	// recorded runs one recorded transfer and waits until its recording
	// has ended, so that the gateway CPU read afterwards includes the
	// final flush and the CPU of the next run does not.
	recorded := func() (bulkRun, recInfo, time.Duration, bool) {
		r, ok := e.stream(viaGatewayRec, command, res.want)
		exited := time.Now()
		info, err := e.waitRecordingEnded(seen)
		if err != nil {
			e.t.Errorf("recording of a %s run: %v", recordedUser, err)
			return r, info, 0, false
		}
		return r, info, time.Since(exited), ok
	}

	// Warm-up, unrecorded first: its RSS is the gateway's before any
	// recording grew the heap (the Go runtime returns memory slowly).
	res.rssBase = vmRSS(e.gwPID)
	stopRSS := e.sampleRSS()
	e.stream(viaGateway, command, res.want)
	res.rssUnrec = stopRSS()
	stopRSS = e.sampleRSS()
	_, info, _, _ := recorded()
	res.rssRec = stopRSS()
	if info.ID != "" {
		e.removeRecordings(seen, "")
	}

	// Each timed recording is deleted as soon as it has ended (the first
	// after it was checked), so that its catch-up index, measured on its
	// own below, does not run during the next runs.
	for i := range cfg.recPairs {
		order := []leg{viaGatewayRec, viaGateway}
		if i%2 == 1 {
			order = []leg{viaGateway, viaGatewayRec}
		}
		for _, l := range order {
			meter := e.startPath(l)
			before := procCPU(e.gwPID)
			stopRSS := e.sampleRSS()
			if l == viaGateway {
				r, ok := e.stream(l, command, res.want)
				after := procCPU(e.gwPID)
				stopRSS()
				if ok {
					res.unrec = append(res.unrec, r)
					res.cpuUnrec.add(before, after, r.bytes)
					res.pathUnrec.add(meter.done(r), r.bytes)
				}
				continue
			}
			r, info, wait, ok := recorded()
			after := procCPU(e.gwPID)
			res.rssRec = max(res.rssRec, stopRSS())
			if !ok {
				continue
			}
			res.pathRec.add(meter.done(r), r.bytes)
			res.rec = append(res.rec, r)
			res.cpuRec.add(before, after, r.bytes)
			res.sizes = append(res.sizes, info.Size)
			res.closeWait = append(res.closeWait, wait)
			if res.verify == "" {
				res.verify = e.verifyRecording(info.ID, cfg.seq)
			}
			e.removeRecordings(seen, info.ID)
		}
	}
	fmt.Fprintf(out, "%d recorded and %d unrecorded runs done; recording checked: %s\n", len(res.rec), len(res.unrec), res.verify)

	// Bulk binary output, recorded and not, alternating.
	bulkCmd := fmt.Sprintf("head -c %d /dev/zero", cfg.bytes)
	for i := range cfg.pairs {
		order := []leg{viaGatewayRec, viaGateway}
		if i%2 == 1 {
			order = []leg{viaGateway, viaGatewayRec}
		}
		for _, l := range order {
			before := procCPU(e.gwPID)
			r, ok := e.stream(l, bulkCmd, cfg.bytes)
			if l == viaGatewayRec {
				info, err := e.waitRecordingEnded(seen)
				if err != nil {
					e.t.Errorf("recording of a bulk run: %v", err)
					ok = false
				}
				if ok {
					res.bulkRec = append(res.bulkRec, r)
					res.cpuBulkRec.add(before, procCPU(e.gwPID), r.bytes)
				}
				e.removeRecordings(seen, info.ID)
				continue
			}
			if ok {
				res.bulkUnrec = append(res.bulkUnrec, r)
				res.cpuBulkUnrec.add(before, procCPU(e.gwPID), r.bytes)
			}
		}
	}

	// The deferred cost: one more recorded run, then its catch-up index
	// with nothing else running, until the recording is fully searchable.
	var indexed string
	if r, info, _, ok := recorded(); ok {
		before, start := procCPU(e.gwPID), time.Now()
		res.indexDone = e.waitIndexed(info.ID, indexWait)
		res.indexWall = time.Since(start)
		res.indexCPU.add(before, procCPU(e.gwPID), r.bytes)
		fmt.Fprintf(out, "catch-up index of one recording: %.1f CPU-s in %s, complete: %v\n",
			res.indexCPU.user+res.indexCPU.sys, res.indexWall.Round(time.Second), res.indexDone)
		// The recording stays: deleting a fully indexed one takes FTS5
		// as long as tokenizing its text again (tens of seconds for
		// seq's), longer than the CLI is given, and an unfinished
		// catch-up holds the writer too. The data directory goes at the
		// end.
		seen[info.ID] = true
		indexed = info.ID
	}

	// The profile: recorded runs back to back, each until its recording
	// has ended.
	cpuBefore := procCPU(e.gwPID)
	var moved int64
	res.profTop, res.profRecording, res.profRuns = e.profileViews(cfg.profileSeconds, func() (bulkRun, bool) {
		r, _, _, ok := recorded()
		if ok {
			moved += r.bytes
		}
		return r, ok
	}, []string{"-top", "-cum", "-nodecount=25", "-focus=internal/recording"}, "recorded")
	res.profCPU.add(cpuBefore, procCPU(e.gwPID), moved)
	e.removeRecordings(seen, "", indexed)

	res.medRec, res.medUnrec = median(mbps(res.rec)), median(mbps(res.unrec))
	res.wallRec, res.wallUnrec = median(wallMbps(res.rec)), median(wallMbps(res.unrec))
	res.ratio = ratio(res.medRec, res.medUnrec)
	return res
}

func (c *cpuUse) add(before, after cpuUse, n int64) {
	c.user += after.user - before.user
	c.sys += after.sys - before.sys
	c.bytes += n
}

// perGB returns CPU seconds per GB (10^9 bytes) moved.
func (c cpuUse) perGB() float64 {
	if c.bytes == 0 {
		return 0
	}
	return (c.user + c.sys) / (float64(c.bytes) / 1e9)
}

func (res recResult) print(out io.Writer) {
	fmt.Fprintf(out, "\n== Recording (seq 1 %d = %d bytes of text per run; MB = 10^6 bytes)\n", res.seq, res.want)
	fmt.Fprintf(out, "  data-phase MB/s   recorded   %s  (median %.0f)\n", fmtList(mbps(res.rec), "%.0f"), res.medRec)
	fmt.Fprintf(out, "                    unrecorded %s  (median %.0f)\n", fmtList(mbps(res.unrec), "%.0f"), res.medUnrec)
	fmt.Fprintf(out, "  whole-command MB/s recorded  %s  (median %.0f)\n", fmtList(wallMbps(res.rec), "%.0f"), res.wallRec)
	fmt.Fprintf(out, "                    unrecorded %s  (median %.0f)\n", fmtList(wallMbps(res.unrec), "%.0f"), res.wallUnrec)
	fmt.Fprintf(out, "  ratio recorded/unrecorded (data-phase medians) %.2f, target >= %.2f: %s; whole command %.2f\n",
		res.ratio, targetRecRatio, verdict(res.ratio >= targetRecRatio, len(res.rec) > 0 && len(res.unrec) > 0), ratio(res.wallRec, res.wallUnrec))
	for _, m := range []struct {
		name string
		c    cpuUse
	}{{"recorded  ", res.cpuRec}, {"unrecorded", res.cpuUnrec}, {"recorded, profiled runs", res.profCPU}} {
		if m.c.bytes == 0 {
			continue
		}
		fmt.Fprintf(out, "  gateway CPU, %s: %.2f CPU-s for %.0f MB = %.2f CPU-s per GB (user %.2f, sys %.2f)\n",
			m.name, m.c.user+m.c.sys, float64(m.c.bytes)/mb, m.c.perGB(), m.c.user, m.c.sys)
	}
	if res.cpuRec.bytes > 0 && res.cpuUnrec.bytes > 0 {
		fmt.Fprintf(out, "  recording's CPU: +%.2f CPU-s per GB of output (%.2fx the unrecorded gateway's)\n",
			res.cpuRec.perGB()-res.cpuUnrec.perGB(), ratio(res.cpuRec.perGB(), res.cpuUnrec.perGB()))
	}
	fmt.Fprint(out, boundLine("seq, recorded vs unrecorded", res.pathUnrec, res.pathRec))
	if len(res.bulkRec) > 0 && len(res.bulkUnrec) > 0 {
		br, bu := median(mbps(res.bulkRec)), median(mbps(res.bulkUnrec))
		fmt.Fprintf(out, "  bulk binary (head -c /dev/zero), data-phase MB/s: recorded %s (median %.0f), unrecorded %s (median %.0f), ratio %.2f\n",
			fmtList(mbps(res.bulkRec), "%.0f"), br, fmtList(mbps(res.bulkUnrec), "%.0f"), bu, ratio(br, bu))
		fmt.Fprintf(out, "    gateway CPU per GB: recorded %.2f, unrecorded %.2f\n", res.cpuBulkRec.perGB(), res.cpuBulkUnrec.perGB())
	}
	if res.indexCPU.bytes > 0 {
		state := "complete"
		if !res.indexDone {
			state = fmt.Sprintf("NOT complete after %v", indexWait)
		}
		fmt.Fprintf(out, "  deferred search index (catch-up of one recording, no session running): %.2f CPU-s per GB of output, %s wall, %s\n",
			res.indexCPU.perGB(), res.indexWall.Round(time.Second), state)
	}
	if len(res.sizes) > 0 {
		parts := make([]string, len(res.sizes))
		for i, s := range res.sizes {
			parts[i] = fmt.Sprintf("%d (%.3fx)", s, float64(s)/float64(res.want))
		}
		fmt.Fprintf(out, "  recording file sizes, bytes (x output): %s\n", strings.Join(parts, " "))
		fmt.Fprintf(out, "    expected about output + 1 byte per line (\"\\n\" is escaped as two bytes: +%d) + ~25 bytes per event of at most 64 KiB\n", res.seq)
	}
	if len(res.closeWait) > 0 {
		w := make([]float64, len(res.closeWait))
		for i, d := range res.closeWait {
			w[i] = float64(d) / float64(time.Millisecond)
		}
		fmt.Fprintf(out, "  client exit -> recording ended (final flush, fsync, store; incl. ~CLI polling), ms: %s\n", fmtList(w, "%.0f"))
	}
	if res.rssRec > 0 {
		fmt.Fprintf(out, "  gateway VmRSS, KiB (sampled every 50 ms): before %d; highest during an unrecorded run (before any recorded one) %d; highest during recorded runs %d\n",
			res.rssBase, res.rssUnrec, res.rssRec)
	}
	if len(res.profRuns) > 0 {
		fmt.Fprintf(out, "  recorded MB/s while profiled (%d runs): %s\n", len(res.profRuns), fmtList(mbps(res.profRuns), "%.0f"))
	}
}

// sampleRSS samples the gateway's VmRSS every 50 ms until the returned
// function is called, which returns the highest reading.
func (e *env) sampleRSS() func() int64 {
	stop := make(chan struct{})
	done := make(chan int64, 1)
	go func() {
		var hi int64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			hi = max(hi, vmRSS(e.gwPID))
			select {
			case <-stop:
				done <- hi
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(stop)
		return <-done
	}
}

// seqBytes returns the size of the output of `seq 1 n`.
func seqBytes(n int) int64 {
	var total int64
	lo, digits := 1, 1
	for lo <= n {
		hi := min(lo*10-1, n)
		total += int64(hi-lo+1) * int64(digits+1)
		lo *= 10
		digits++
	}
	return total
}

// recInfo is what `recordings ls --json` says of one recording.
type recInfo struct {
	ID    string `json:"id"`
	State string `json:"state"`
	User  string `json:"user"`
	Size  int64  `json:"size"`
	Index string `json:"index"`
}

// waitIndexed waits until recording id's search index is complete (or
// failed), at most limit, and reports whether it is complete.
func (e *env) waitIndexed(id string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		recs, err := e.listRecordings()
		if err != nil {
			e.t.Errorf("%v", err)
			return false
		}
		for _, r := range recs {
			if r.ID != id {
				continue
			}
			switch r.Index {
			case "complete":
				return true
			case "failed":
				e.t.Errorf("recording %s: search index failed", id)
				return false
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// waitRecordingEnded waits for a recording of recordedUser not in seen to
// be no longer active, adds it to seen and returns it.
func (e *env) waitRecordingEnded(seen map[string]bool) (recInfo, error) {
	deadline := time.Now().Add(recordingEndWait)
	for {
		recs, err := e.listRecordings()
		if err != nil {
			return recInfo{}, err
		}
		for _, r := range recs {
			if seen[r.ID] || r.State == "active" {
				continue
			}
			seen[r.ID] = true
			if r.State != "ended" {
				return r, fmt.Errorf("recording %s is %s", r.ID, r.State)
			}
			return r, nil
		}
		if time.Now().After(deadline) {
			return recInfo{}, fmt.Errorf("no new ended recording of %s after %v: %+v", recordedUser, recordingEndWait, recs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) listRecordings() ([]recInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, "recordings", "ls", "--user", recordedUser, "--limit", "10000", "--json")
	cmd.Env = append(os.Environ(), "PORTCULLIS_DATA_DIR="+e.dataDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("portcullis recordings ls: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var recs []recInfo
	if err := json.Unmarshal(stdout.Bytes(), &recs); err != nil {
		return nil, fmt.Errorf("portcullis recordings ls --json: %v", err)
	}
	return recs, nil
}

// removeRecordings deletes recordedUser's ended recordings (all of them, or
// only id), so that the disk does not fill up with seq output.
func (e *env) removeRecordings(seen map[string]bool, id string, keep ...string) {
	recs, err := e.listRecordings()
	if err != nil {
		e.t.Errorf("%v", err)
		return
	}
	for _, r := range recs {
		if r.State == "active" || (id != "" && r.ID != id) || slices.Contains(keep, r.ID) {
			continue
		}
		seen[r.ID] = true
		// Deleting a recording deletes its search index too, which
		// waits for the store's write connection behind the indexer:
		// a minute or more under load. A failure is reported, and the
		// run goes on (the data directory is removed at the end).
		var stderr strings.Builder
		if err := e.cliRun(recordingEndWait, io.Discard, &stderr, "recordings", "rm", "--yes", r.ID); err != nil {
			e.t.Errorf("portcullis recordings rm %s: %v: %s", r.ID, err, strings.TrimSpace(stderr.String()))
		}
	}
}

// verifyRecording decodes a recording of `seq 1 n` from the recordings
// directory and compares its output with what seq prints.
func (e *env) verifyRecording(id string, n int) string {
	f, err := os.Open(filepath.Join(e.dataDir, "recordings", id+".cast"))
	if err != nil {
		e.t.Errorf("verify recording: %v", err)
		return err.Error()
	}
	defer f.Close()
	rd, err := recording.NewReader(f)
	if err != nil {
		e.t.Errorf("verify recording %s: %v", id, err)
		return err.Error()
	}
	got := sha256.New()
	var events, outBytes int64
	var markers int
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			e.t.Errorf("verify recording %s: %v", id, err)
			return err.Error()
		}
		events++
		if ev.Type != "o" {
			continue
		}
		if strings.Contains(ev.Data, "[portcullis:") {
			markers++
		}
		outBytes += int64(len(ev.Data))
		io.WriteString(got, ev.Data)
	}
	want := sha256.New()
	var buf []byte
	for i := 1; i <= n; i++ {
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, '\n')
		if len(buf) >= 64<<10 {
			want.Write(buf)
			buf = buf[:0]
		}
	}
	want.Write(buf)
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		msg := fmt.Sprintf("recording %s: output differs from seq's: %d bytes in %d events, %d portcullis markers", id, outBytes, events, markers)
		e.t.Errorf("%s", msg)
		return msg
	}
	return fmt.Sprintf("recording %s holds exactly seq's %d bytes in %d events", id, outBytes, events)
}
