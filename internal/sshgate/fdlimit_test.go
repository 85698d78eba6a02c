package sshgate_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/fdlimit"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// fdChildEnv marks the test binary re-run by TestOpenFileLimit: only that
// process lowers its limit of open files, never the one running the other
// tests.
const fdChildEnv = "PORTCULLIS_TEST_FDLIMIT_CHILD"

// TestOpenFileLimit: a gateway with a limit of 128 open files, sessions
// opened until it is near the limit. Sessions already running go on, new
// ones are refused with one line (audited once), and it serves again when
// some end. It used to reach EMFILE, and before the accept loop's backoff
// the gateway stopped.
//
// The gateway runs in a child process (this test binary again, with only
// this test), which lowers its own limit: lowering it here would starve
// the other tests of the process.
func TestOpenFileLimit(t *testing.T) {
	if os.Getenv(fdChildEnv) == "" {
		testenv.RequireRoot(t)
		testenv.Require(t, "ssh", testenv.SSHDPath)
		// Generous: under make test's load one session's setup once took
		// longer than the 20 s this test used to give it.
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestOpenFileLimit$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), fdChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child gateway: %v\n%s", err, out)
		}
		t.Logf("child:\n%s", out)
		if !strings.Contains(string(out), "--- PASS: TestOpenFileLimit") {
			t.Fatalf("child did not run the test:\n%s", out)
		}
		return
	}
	w := newWorld(t, "exec", quietLog)
	const limit = 128
	lim := syscall.Rlimit{Cur: limit, Max: limit}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("lower the open-file limit: %v", err)
	}
	free := (&fdlimit.Budget{}).Free()
	t.Logf("limit %d, %d free before the first session", limit, free)

	base := append(w.opts(true), "-n", "-l", "alice~web1", "127.0.0.1")
	logDir := t.TempDir()
	type held struct {
		cmd    *exec.Cmd
		stderr string
		done   chan struct{}
	}
	var sessions []*held
	t.Cleanup(func() {
		for _, h := range sessions {
			_ = h.cmd.Process.Kill()
			<-h.done
		}
	})
	// hold starts a session that sleeps and waits until it runs (its
	// session.start) or ends; it reports whether it runs.
	hold := func() (*held, bool) {
		h := &held{stderr: filepath.Join(logDir, fmt.Sprintf("%d", len(sessions))), done: make(chan struct{})}
		f, err := os.Create(h.stderr)
		if err != nil {
			t.Fatal(err)
		}
		// The ssh clients are separate processes: only the gateway's own
		// descriptors count against this process's limit. The file is
		// closed here once the client has it.
		h.cmd = exec.Command("ssh", append(base, "exec sleep 300")...)
		h.cmd.Stderr = f
		err = h.cmd.Start()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, h)
		go func() {
			_ = h.cmd.Wait()
			close(h.done)
		}()
		want := len(w.gw.events(audit.SessionStart)) + 1
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
			select {
			case <-h.done:
				return h, false
			case <-time.After(20 * time.Millisecond):
			}
			if len(w.gw.events(audit.SessionStart)) >= want {
				return h, true
			}
		}
		msg, _ := os.ReadFile(h.stderr)
		t.Fatalf("session %d neither ran nor ended in 90 s; its ssh client's stderr: %q", len(sessions), msg)
		return nil, false
	}
	running := 0
	var refused *held
	for range limit {
		h, ok := hold()
		if !ok {
			refused = h
			break
		}
		running++
	}
	if refused == nil {
		t.Fatalf("%d sessions under a limit of %d open files, none refused", running, limit)
	}
	t.Logf("%d sessions running, the next one refused", running)
	msg, _ := os.ReadFile(refused.stderr)
	if code := refused.cmd.ProcessState.ExitCode(); code != 1 || strings.Count(string(msg), "portcullis:") != 1 ||
		!strings.Contains(string(msg), "portcullis: the gateway is at its limit of open files") {
		t.Fatalf("refused session: exit %d, stderr %q; want exit 1 and the one open-files line", code, msg)
	}
	// Another refusal in the same minute is not audited again.
	if h, ok := hold(); ok {
		t.Fatalf("second session past the limit ran (stderr in %s)", h.stderr)
	}
	var refusals int
	for _, ev := range w.gw.events(audit.RequestDeny) {
		if strings.Contains(ev.Message, "limit of open files") {
			refusals++
		}
	}
	if refusals != 1 {
		t.Errorf("%d audit events for refusals near the limit, want 1", refusals)
	}
	// Sessions already running go on: none of them ended.
	for i, h := range sessions[:running] {
		select {
		case <-h.done:
			msg, _ := os.ReadFile(h.stderr)
			t.Fatalf("session %d ended while the gateway was at its limit: %q", i, msg)
		default:
		}
	}
	if n := len(w.gw.events(audit.SessionEnd)); n != 0 {
		t.Fatalf("%d sessions ended at the limit, want none", n)
	}
	// Some end; the gateway serves again.
	for _, h := range sessions[:5] {
		_ = h.cmd.Process.Kill()
		<-h.done
	}
	w.gw.waitEvent(audit.SessionEnd, func(store.AuditEvent) bool { return len(w.gw.events(audit.SessionEnd)) >= 5 })
	out, errOut, code := w.ssh("", "alice~web1", []string{"-n"}, "echo again")
	if code != 0 || out != "again\n" {
		t.Fatalf("session after five ended: exit %d out %q stderr %q", code, out, errOut)
	}
}
