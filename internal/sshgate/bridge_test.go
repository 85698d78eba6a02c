package sshgate_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/testenv"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

func TestExecThroughGateway(t *testing.T) {
	w := newWorld(t, "shell, exec, file-transfer, tunnel")
	login := "alice~" + w.unixUser + "~web1"

	out, errOut, code := w.ssh("", login, nil, "echo hello; id -un; echo oops >&2; exit 3")
	if code != 3 {
		t.Fatalf("exit = %d, want 3; stderr: %s", code, errOut)
	}
	if want := "hello\n" + w.unixUser + "\n"; out != want {
		t.Fatalf("stdout = %q, want %q", out, want)
	}
	if !strings.Contains(errOut, "oops") {
		t.Fatalf("stderr = %q, want oops", errOut)
	}

	// USER~TARGET works when exactly one target user is allowed.
	out, errOut, code = w.ssh("", "alice~web1", nil, "id -un")
	if code != 0 || strings.TrimSpace(out) != w.unixUser {
		t.Fatalf("alice~web1: code %d out %q err %q", code, out, errOut)
	}

	// stdin reaches the command and EOF ends it.
	out, _, code = w.ssh("line1\nline2\n", login, nil, "wc -l")
	if code != 0 || strings.TrimSpace(out) != "2" {
		t.Fatalf("wc -l through gateway: code %d out %q", code, out)
	}

	// A command killed by a signal: OpenSSH's client exits 255 on
	// exit-signal, as it does direct; the audit trail names the signal.
	_, errOut, code = w.ssh("", login, nil, "kill -TERM $$")
	if code != 255 {
		t.Fatalf("killed command: code %d, stderr %q; want 255", code, errOut)
	}
	w.gw.waitEvent(audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.Detail["exit_signal"] == "TERM" })

	start := w.gw.waitEvent(audit.SessionStart, nil)
	if start.Policy != "alice-web1" || start.User != "alice" || start.Account != w.unixUser || start.Target != "web1" {
		t.Fatalf("session.start = %+v", start)
	}
	end := w.gw.waitEvent(audit.SessionEnd, func(ev store.AuditEvent) bool { return ev.Detail["exit_status"] == float64(3) })
	if end.Detail["bytes_out"].(float64) < 6 {
		t.Fatalf("session.end bytes_out = %v", end.Detail["bytes_out"])
	}
}

func TestShellWithPTY(t *testing.T) {
	w := newWorld(t, "shell")
	// -tt forces a pty although stdin is not a terminal; the remote shell
	// reads the script from the pty and exits with its status.
	out, errOut, code := w.ssh("stty size; echo marker-$((6*7)); exit 7\n", "alice~web1", []string{"-tt"})
	if code != 7 {
		t.Fatalf("exit = %d, want 7; out %q err %q", code, out, errOut)
	}
	if !strings.Contains(out, "marker-42") {
		t.Fatalf("shell output %q lacks marker-42", out)
	}
}

func TestFileTransfer(t *testing.T) {
	w := newWorld(t, "file-transfer")
	local := filepath.Join(w.clientDir, "payload.bin")
	payload := make([]byte, 3<<20+17)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	if err := os.WriteFile(local, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	login := "alice~web1"
	dest := "127.0.0.1:"
	back := filepath.Join(w.clientDir, "back")
	check := func(name string) {
		t.Helper()
		got, err := os.ReadFile(back)
		if err != nil {
			t.Fatalf("%s: read back: %v", name, err)
		}
		if string(got) != string(payload) {
			t.Fatalf("%s: round trip differs (%d bytes, want %d)", name, len(got), len(payload))
		}
		os.Remove(back)
	}
	run := func(name string, args ...string) {
		t.Helper()
		out, errOut, code := runTool(t, name, args...)
		if code != 0 {
			t.Fatalf("%s %v: exit %d\nstdout: %s\nstderr: %s", name, args, code, out, errOut)
		}
	}
	opts := w.opts(false)

	// scp in SFTP mode (OpenSSH 9 default) and the legacy protocol (-O).
	for _, mode := range [][]string{nil, {"-O"}} {
		args := append(append([]string{}, opts...), mode...)
		run("scp", append(args, local, login+"@"+dest+"up.bin")...)
		run("scp", append(args, login+"@"+dest+"up.bin", back)...)
		check("scp " + strings.Join(mode, ""))
	}

	// sftp in batch mode.
	batch := filepath.Join(w.clientDir, "batch")
	os.WriteFile(batch, []byte("put "+local+" sftp.bin\nget sftp.bin "+back+"\n"), 0o644)
	run("sftp", append(append([]string{}, opts...), "-b", batch, login+"@127.0.0.1")...)
	check("sftp")

	// rsync over the gateway. Its file list is not judged, so an upload
	// needs paths.write to name where it goes (TestTransferRsync).
	shell := "ssh " + strings.Join(quoteAll(opts), " ")
	w.setPaths("{read: ['/**'], write: ['~/**']}")
	run("rsync", "-e", shell, local, login+"@127.0.0.1:rsync.bin")
	run("rsync", "-e", shell, login+"@127.0.0.1:rsync.bin", back)
	check("rsync")

	// file-transfer alone grants no shell or exec, including a transfer
	// command with something for the shell appended.
	for _, cmd := range []string{"id", "scp -t /tmp/x; echo PWNED-$(id -un)"} {
		out, errOut, code := w.ssh("", login, nil, cmd)
		if code == 0 || strings.Contains(out, "PWNED") || !strings.Contains(errOut, "not granted exec") {
			t.Fatalf("%q with only file-transfer: code %d, out %q, stderr %q", cmd, code, out, errOut)
		}
	}
}

func runTool(t *testing.T, name string, args ...string) (string, string, int) {
	t.Helper()
	return testenv.Run(t, 60*time.Second, name, args...)
}

// quoteAll single-quotes each word for a shell (rsync -e splits its value
// like a shell would).
func quoteAll(words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return out
}
