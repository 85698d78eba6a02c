package sshgate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// recordingWorld adds a session-recording policy for alice on web1.
func recordingWorld(t *testing.T, actions string, recordInput bool) *world {
	w := newWorld(t, actions)
	w.gw.apply(fmt.Sprintf(`
kind: Policy
name: record-alice
type: session-recording
subjects: {users: [alice]}
targets: {names: [web1]}
record_input: %v
`, recordInput))
	return w
}

// endedRecording waits for the recording of the session that ran cmdPart
// to end and returns it.
func (g *gateway) endedRecording(t *testing.T, match func(store.Recording) bool) store.Recording {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, err := g.store.ListRecordings(context.Background(), store.RecordingFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.State == store.RecordingEnded && match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ended recording matched; have %+v", recs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRecordedShellWithHistoryAndSearch(t *testing.T) {
	testenv.Require(t, "asciinema")
	w := recordingWorld(t, "shell, exec", true)
	// Typed with edits: Ctrl-U kills "echo wrong", a backspace fixes a typo.
	script := "echo wrong\x15echo right-$((1+1))x\x7f\r" + "printf 'needle-%s\\n' haystack\r" + "exit\r"
	out, errOut, code := w.ssh(script, "alice~web1", []string{"-tt"})
	if code != 0 || !strings.Contains(out, "right-2") {
		t.Fatalf("shell: code %d out %q err %q", code, out, errOut)
	}
	rec := w.gw.endedRecording(t, func(r store.Recording) bool { return r.Action == "shell" })
	if rec.SHA256 == "" || rec.Size == 0 || rec.User != "alice" || rec.Target != "web1" || rec.Account != w.unixUser {
		t.Fatalf("recording metadata %+v", rec)
	}
	// The real asciinema reads it and shows what the user saw.
	file := filepath.Join(w.gw.rec.Dir(), rec.ID+".cast")
	cat, code := testenv.AsciinemaCat(t, file)
	if code != 0 || !strings.Contains(cat, "right-2") || !strings.Contains(cat, "needle-haystack") {
		t.Fatalf("asciinema cat: code %d out %q", code, cat)
	}
	raw, _ := os.ReadFile(file)
	if !strings.Contains(string(raw), `, "i", `) && !strings.Contains(string(raw), `,"i",`) {
		t.Fatalf("record_input: no input events in\n%s", raw)
	}
	// The session end event carries the recording's hash.
	w.gw.waitEvent(audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.Detail["recording_sha256"] == rec.SHA256 })

	// Command history from the reconstructed lines.
	cmds, err := w.gw.store.ListCommands(context.Background(), store.CommandFilter{SessionID: rec.ID})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range cmds {
		lines = append(lines, c.Command)
		if !c.Interactive || c.User != "alice" || c.Account != w.unixUser {
			t.Fatalf("command %+v", c)
		}
	}
	if want := []string{"echo right-$((1+1))", "printf 'needle-%s\\n' haystack", "exit"}; strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("history %q, want %q", lines, want)
	}

	// Keyword search over what appeared on screen.
	var hits []store.SearchHit
	deadline := time.Now().Add(10 * time.Second)
	for len(hits) == 0 && time.Now().Before(deadline) {
		hits, err = w.gw.store.SearchText(context.Background(), "needle-haystack", 10)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(hits) != 1 || hits[0].RecordingID != rec.ID || !strings.Contains(hits[0].Snippet, "needle") {
		t.Fatalf("search hits %+v", hits)
	}

	// And the audit trail of all of it chains.
	v, err := audit.Verify(context.Background(), w.gw.store, nil, nil)
	if err != nil || !v.OK || v.Events < 3 {
		t.Fatalf("audit chain: %+v, %v", v, err)
	}
}

func TestRecordedExecAndExitStatus(t *testing.T) {
	w := recordingWorld(t, "exec", false)
	out, _, code := w.ssh("", "alice~web1", nil, "echo exec-out; exit 3")
	if code != 3 || out != "exec-out\n" {
		t.Fatalf("exec: code %d out %q", code, out)
	}
	rec := w.gw.endedRecording(t, func(r store.Recording) bool { return r.Action == "exec" })
	if rec.Command != "echo exec-out; exit 3" {
		t.Fatalf("recording %+v", rec)
	}
	raw, err := os.ReadFile(filepath.Join(w.gw.rec.Dir(), rec.ID+".cast"))
	if err != nil || !strings.Contains(string(raw), "exec-out") || strings.Contains(string(raw), `"i"`) {
		t.Fatalf("exec recording: %v\n%s", err, raw)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmds, err := w.gw.store.ListCommands(context.Background(), store.CommandFilter{SessionID: rec.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(cmds) == 1 && cmds[0].ExitStatus != nil {
			if cmds[0].Command != "echo exec-out; exit 3" || *cmds[0].ExitStatus != 3 || cmds[0].Interactive {
				t.Fatalf("command %+v", cmds[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exec command with exit status not logged: %+v", cmds)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFileTransferOpsAudited(t *testing.T) {
	w := newWorld(t, "file-transfer")
	local := filepath.Join(w.clientDir, "up.txt")
	os.WriteFile(local, []byte(strings.Repeat("x", 12345)), 0o644)
	batch := filepath.Join(w.clientDir, "batch")
	os.WriteFile(batch, []byte("put "+local+" remote.txt\nrename remote.txt moved.txt\nrm moved.txt\n"), 0o644)
	_, errOut, code := runTool(t, "sftp", append(w.opts(false), "-b", batch, "alice~web1@127.0.0.1")...)
	if code != 0 {
		t.Fatalf("sftp: %d %s", code, errOut)
	}
	up := w.gw.waitEvent(audit.FileTransfer, func(ev store.AuditEvent) bool { return ev.Detail["operation"] == "upload" })
	if !strings.HasSuffix(up.Detail["path"].(string), "remote.txt") || up.Detail["bytes"] != float64(12345) {
		t.Fatalf("upload event %+v", up)
	}
	w.gw.waitEvent(audit.FileTransfer, func(ev store.AuditEvent) bool { return ev.Detail["operation"] == "rename" })
	w.gw.waitEvent(audit.FileTransfer, func(ev store.AuditEvent) bool { return ev.Detail["operation"] == "remove" })
}

func TestLiveSessionsAndKill(t *testing.T) {
	w := newWorld(t, "exec")
	_, stderr, done := w.startLongSession(t, "alice~web1", "echo started; sleep 60")
	list := w.gw.srv.List()
	if len(list) != 1 || list[0].User != "alice" || list[0].Target != "web1" || list[0].Action != "exec" {
		t.Fatalf("live sessions %+v", list)
	}
	if err := w.gw.srv.Kill(list[0].ID, "admin", "maintenance"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("killed session still running")
	}
	if !strings.Contains(stderr.String(), "session ended: ended by admin: maintenance") {
		t.Fatalf("client saw %q", stderr.String())
	}
	if err := w.gw.srv.Kill("nope", "admin", ""); err == nil {
		t.Fatal("kill of an unknown session succeeded")
	}
}
