package sshgate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/recording"
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

// TestFileTransferRecordedAsOperations: an sftp session, an scp in SFTP
// mode and a legacy scp (-O) are each recorded as their file operations,
// marked as file-transfer recordings, and none of them holds the bytes of
// the files they moved (not as text, not escaped, not in input events),
// while the integrity check still holds.
func TestFileTransferRecordedAsOperations(t *testing.T) {
	w := recordingWorld(t, "file-transfer", true)
	// Content that would show in a recording as is, or JSON-escaped.
	secret := "SECRET-CONTENT-4f1d\n"
	local := filepath.Join(w.clientDir, "up.txt")
	if err := os.WriteFile(local, []byte(strings.Repeat(secret, 300)), 0o644); err != nil {
		t.Fatal(err)
	}
	batch := filepath.Join(w.clientDir, "batch")
	os.WriteFile(batch, []byte("put "+local+" remote.txt\nget remote.txt "+local+".back\nrename remote.txt moved.txt\nrm moved.txt\n"), 0o644)
	remote := "alice~web1@127.0.0.1:"
	runs := []struct {
		name string
		tool string
		args []string
		ops  []string // operations that must be in the recording, in order
		path string   // the upload's path ends so
	}{
		{"sftp", "sftp", []string{"-b", batch, "alice~web1@127.0.0.1"}, []string{"upload", "download", "rename", "remove"}, "/remote.txt"},
		{"scp", "scp", []string{local, remote + "viascp.txt"}, []string{"setstat", "upload"}, "viascp.txt"},
		{"scp -O", "scp", []string{"-O", local, remote + "legacy.txt"}, []string{"upload"}, "legacy.txt"},
	}
	seen := map[string]bool{}
	for _, run := range runs {
		_, errOut, code := runTool(t, run.tool, append(w.opts(false), run.args...)...)
		if code != 0 {
			t.Fatalf("%s: %d %s", run.name, code, errOut)
		}
		rec := w.gw.endedRecording(t, func(r store.Recording) bool { return r.Action == "file-transfer" && !seen[r.ID] })
		seen[rec.ID] = true
		file := filepath.Join(w.gw.rec.Dir(), rec.ID+".cast")
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), "SECRET-CONTENT") || strings.Contains(string(raw), "SECRET") {
			t.Fatalf("%s: the recording holds the file's bytes:\n%.2000s", run.name, raw)
		}
		rd, err := recording.NewReader(strings.NewReader(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if !rd.Header().IsFileTransfer() || recording.Kind(rec.Action) != recording.KindFileTransfer {
			t.Fatalf("%s: not marked as a file transfer: %+v", run.name, rd.Header())
		}
		var ops []recording.FileOp
		for {
			ev, err := rd.Next()
			if err != nil {
				break
			}
			if ev.Type != "o" {
				t.Fatalf("%s: event %+v in a file-transfer recording", run.name, ev)
			}
			op, err := recording.ParseFileOp(ev.Data)
			if err != nil {
				t.Fatalf("%s: event %q: %v", run.name, ev.Data, err)
			}
			ops = append(ops, op)
		}
		var kinds []string
		for _, op := range ops {
			kinds = append(kinds, op.Op)
		}
		if strings.Join(kinds, ",") != strings.Join(run.ops, ",") {
			t.Fatalf("%s: operations %+v, want %v", run.name, ops, run.ops)
		}
		up := ops[slices.Index(kinds, "upload")]
		if up.Bytes != int64(len(secret)*300) || !strings.HasSuffix(up.Path, run.path) {
			t.Fatalf("%s: upload %+v", run.name, up)
		}
		// The integrity check reads it like any recording.
		w.gw.waitEvent(audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.Detail["recording_sha256"] == rec.SHA256 })
		f, _, in, err := w.gw.rec.OpenChecked(context.Background(), rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		err = recording.Play(context.Background(), f, &out, recording.PlayOptions{})
		f.Close()
		if err != nil || in.State != recording.IntegrityOK {
			t.Fatalf("%s: play %v, integrity %+v", run.name, err, in)
		}
		if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != len(run.ops) || !strings.Contains(out.String(), "upload  "+up.Path+fmt.Sprintf("  %d bytes", len(secret)*300)) {
			t.Fatalf("%s: play printed %q", run.name, out.String())
		}
	}
}

// TestSearchHitAtItsTime: a word that appears two seconds into a session
// (after a sleep) is reported at or after those two seconds, not at the
// start of the chunk that holds it (the session's first line, at 0 s).
func TestSearchHitAtItsTime(t *testing.T) {
	w := recordingWorld(t, "shell", false)
	script := "sleep 2\r" + "printf 'zebra%s\\n' corn\r" + "exit\r"
	if out, errOut, code := w.ssh(script, "alice~web1", []string{"-tt"}); code != 0 || !strings.Contains(out, "zebracorn") {
		t.Fatalf("shell: code %d out %q err %q", code, out, errOut)
	}
	rec := w.gw.endedRecording(t, func(r store.Recording) bool { return r.Action == "shell" })
	var hits []store.SearchHit
	deadline := time.Now().Add(10 * time.Second)
	for len(hits) == 0 && time.Now().Before(deadline) {
		var err error
		if hits, err = w.gw.store.SearchText(context.Background(), "zebracorn", 10); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The output line came after the sleep, and before the end.
	if len(hits) != 1 || hits[0].RecordingID != rec.ID || hits[0].Offset < 2 || hits[0].Offset > rec.EndedAt.Sub(rec.StartedAt).Seconds() {
		t.Fatalf("hits %+v, want one at 2 s or later in a recording of %v", hits, rec.EndedAt.Sub(rec.StartedAt))
	}
}
