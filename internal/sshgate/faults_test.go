package sshgate_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// heldSession is a real ssh client running a command through the gateway
// that printed its first line.
type heldSession struct {
	cmd    *exec.Cmd
	first  string
	stderr *lockedBuffer
	done   chan struct{}
}

// holdSession starts ssh with command and waits for its first line of
// output.
func (w *world) holdSession(t *testing.T, command string) *heldSession {
	t.Helper()
	args := append(w.opts(true), "-n", "-l", "alice~web1", "127.0.0.1", command)
	h := &heldSession{cmd: exec.Command("ssh", args...), stderr: &lockedBuffer{}, done: make(chan struct{})}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.cmd.Stderr = h.stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = h.cmd.Process.Kill()
		<-h.done
	})
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, br) // the rest, so that output never stalls
		_ = h.cmd.Wait()
		close(h.done)
	}()
	select {
	case h.first = <-lines:
	case <-time.After(20 * time.Second):
		t.Fatalf("session %q printed nothing; stderr %q", command, h.stderr.String())
	}
	if h.first == "" {
		t.Fatalf("session %q ended at once; stderr %q", command, h.stderr.String())
	}
	return h
}

// wait waits for the client to exit and returns its exit code.
func (h *heldSession) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("client still running; stderr %q", h.stderr.String())
	}
	return h.cmd.ProcessState.ExitCode()
}

// TestTargetProcessDies: when the session's process on the target is
// killed, or the target's sshd serving it, the user gets one line saying
// so and session.end records a failure with the reason and the signal. It
// used to be exit 255 without a word and session.end "success" with no
// status.
func TestTargetProcessDies(t *testing.T) {
	cases := []struct {
		name       string
		kill       func(shell, sshd int) int // the pid to kill -9
		wantLine   string
		wantSignal string
	}{
		{"shell killed", func(shell, _ int) int { return shell },
			"portcullis: the session on web1 ended: its process was killed by signal KILL", "KILL"},
		{"target sshd killed", func(_, sshd int) int { return sshd },
			"portcullis: the session on web1 ended without an exit status", ""},
	}
	w := newWorld(t, "exec")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The shell becomes sleep (exec), so $$ is the session's process
			// and $PPID the target's sshd for this connection.
			before := map[string]bool{}
			for _, ev := range w.gw.events(audit.SessionStart) {
				before[ev.SessionID] = true
			}
			h := w.holdSession(t, "echo $$ $PPID; exec sleep 60")
			f := strings.Fields(h.first)
			if len(f) != 2 {
				t.Fatalf("first line %q", h.first)
			}
			shell, _ := strconv.Atoi(f[0])
			sshd, _ := strconv.Atoi(f[1])
			if err := syscall.Kill(tc.kill(shell, sshd), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			code := h.wait(t)
			lines := strings.Split(strings.TrimSpace(h.stderr.String()), "\n")
			var ours []string
			for _, l := range lines {
				if strings.HasPrefix(l, "portcullis:") {
					ours = append(ours, strings.TrimSpace(l))
				}
			}
			if len(ours) != 1 || !strings.HasPrefix(ours[0], tc.wantLine) {
				t.Errorf("exit %d, gateway lines %q, want one starting %q", code, ours, tc.wantLine)
			}
			start := w.gw.waitEvent(audit.SessionStart, func(ev store.AuditEvent) bool { return !before[ev.SessionID] })
			end := w.gw.waitEvent(audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.SessionID == start.SessionID })
			if end.Outcome != audit.Failure {
				t.Errorf("session.end outcome %q, want %q", end.Outcome, audit.Failure)
			}
			if r, _ := end.Detail["end_reason"].(string); !strings.HasPrefix("portcullis: "+r, tc.wantLine) {
				t.Errorf("session.end end_reason %q, want the line the user saw", r)
			}
			if sig, _ := end.Detail["exit_signal"].(string); sig != tc.wantSignal {
				t.Errorf("session.end exit_signal %q, want %q", sig, tc.wantSignal)
			}
		})
	}
	// A command that exits on its own is still a success, with no line.
	out, errOut, code := w.ssh("", "alice~web1", []string{"-n"}, "exit 3")
	if code != 3 || out != "" || strings.Contains(errOut, "portcullis:") {
		t.Errorf("exit 3: code %d out %q stderr %q", code, out, errOut)
	}
}

// TestShutdownNoticeAndSessionIDs: at shutdown every live session is told
// at once how long it has, and session.shutdown carries the session's own
// id, as session.start and session.end do. Both used to be missing: the
// notice came only when the session was closed, under the connection's id.
func TestShutdownNoticeAndSessionIDs(t *testing.T) {
	w := newWorld(t, "exec")
	h := w.holdSession(t, "echo started; sleep 60")
	start := w.gw.waitEvent(audit.SessionStart, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- w.gw.srv.Shutdown(ctx) }()
	// The notice arrives at the start of the grace period, not its end.
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(h.stderr.String(), "will be closed in"); {
		if time.Now().After(deadline) {
			t.Fatalf("no notice within the grace period; client stderr %q", h.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if want := "portcullis: the gateway is shutting down: this session will be closed in 3s"; !strings.Contains(h.stderr.String(), want) {
		t.Errorf("client stderr %q, want %q", h.stderr.String(), want)
	}
	<-shut
	h.wait(t)
	ev := w.gw.waitEvent(audit.SessionShutdown, nil)
	if ev.SessionID != start.SessionID {
		t.Errorf("session.shutdown session id %q, want the session's %q", ev.SessionID, start.SessionID)
	}
	end := w.gw.waitEvent(audit.SessionEnd, nil)
	if end.SessionID != start.SessionID {
		t.Errorf("session.end session id %q, want %q", end.SessionID, start.SessionID)
	}
	if _, lost := end.Detail["end_reason"]; lost || end.Outcome != audit.Success {
		t.Errorf("session ended by shutdown recorded as lost: %+v", end)
	}
}

// TestRecordingLostToFullDisk: a recording whose disk fills while the
// session goes on (on_failure: continue) is listed live as incomplete, not
// recorded; it ends incomplete, and session.end says how much was lost and
// when. It used to be "recorded" live and plainly "ended".
func TestRecordingLostToFullDisk(t *testing.T) {
	w := newWorld(t, "exec")
	w.gw.apply(`
kind: Policy
name: record-alice
type: session-recording
subjects: {users: [alice]}
targets: {names: [web1]}
on_failure: continue
`)
	dir := w.gw.rec.Dir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v %s", err, out)
	}
	// Lazy: the gateway may still hold the file open until its cleanup.
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })

	// 1 MB of text into a 256 KiB file system, then the session idles.
	h := w.holdSession(t, "echo started; head -c 1000000 /dev/zero | tr '\\0' x; echo; sleep 60")
	var id string
	for deadline := time.Now().Add(15 * time.Second); ; {
		list := w.gw.srv.List()
		if len(list) == 1 && list[0].RecordingIncomplete {
			if list[0].Recorded {
				t.Fatalf("live session both recorded and incomplete: %+v", list[0])
			}
			id = list[0].ID
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live listing never said the recording is incomplete: %+v", list)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.gw.waitEvent(audit.RecordingFailure, func(ev store.AuditEvent) bool { return ev.SessionID == id })
	_ = h.cmd.Process.Kill()
	h.wait(t)
	end := w.gw.waitEvent(audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.SessionID == id })
	lost, _ := end.Detail["recording_lost_bytes"].(float64)
	from, _ := end.Detail["recording_gap_from_s"].(float64)
	to, _ := end.Detail["recording_gap_to_s"].(float64)
	if end.Detail["recording_state"] != store.RecordingIncomplete || lost < 500000 || lost > 1000009 || from > to {
		t.Errorf("session.end detail %v: want recording_state incomplete, most of the 1 MB lost, a gap from <= to", end.Detail)
	}
	rec, err := w.gw.store.GetRecording(context.Background(), id)
	if err != nil || rec.State != store.RecordingIncomplete {
		t.Errorf("recording %+v (%v): want state %q", rec, err, store.RecordingIncomplete)
	}
	// The listing says what was lost, as session.end does.
	if rec.LostBytes != int64(lost) || rec.GapTo < rec.GapFrom || rec.GapTo.Seconds() < to-0.001 || rec.GapFrom.Seconds() > from+0.001 {
		t.Errorf("recording row lost %d bytes from %s to %s; session.end says %v bytes from %.3fs to %.3fs",
			rec.LostBytes, rec.GapFrom, rec.GapTo, lost, from, to)
	}
	t.Logf("lost %s bytes, from %.1fs to %.1fs", fmt.Sprint(int64(lost)), from, to)
}
