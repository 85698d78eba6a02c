package sshgate_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

func TestShellCommandControl(t *testing.T) {
	w := newWorld(t, "shell, exec")
	w.gw.apply(fmt.Sprintf(`
kind: Operation
name: forbidden
patterns: ["FORBID"]
---
kind: Policy
name: alice-web1
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [%s]
actions: [shell, exec]
commands: {deny: ["@forbidden"]}
`, w.unixUser))

	// Exec: exact, checked before anything reaches the target.
	out, errOut, code := w.ssh("", "alice~web1", nil, "echo FORBID-$((2+3))")
	if code == 0 || strings.Contains(out, "FORBID-5") || !strings.Contains(errOut, "command denied by operation forbidden") {
		t.Fatalf("exec: code %d out %q err %q", code, out, errOut)
	}

	// A shell without a pty: each line is held until allowed.
	out, errOut, code = w.ssh("echo one\necho FORBID-$((2+3))\necho two\n", "alice~web1", []string{"-T"})
	if code != 0 || out != "one\ntwo\n" || !strings.Contains(errOut, "command denied by operation forbidden (policy alice-web1); the line was not run") {
		t.Fatalf("shell without pty: code %d out %q err %q", code, out, errOut)
	}

	// A shell with a pty: keystrokes pass (the target echoes them), the
	// Enter of a denied line does not. Backspaces are reconstructed: the
	// line below is edited into the forbidden command before Enter.
	script := "echo one\r" + "echo FORBIX\x7fD-$((2+3))\r" + "echo marker-$((1+1))\r" + "exit 4\r"
	out, errOut, code = w.ssh(script, "alice~web1", []string{"-tt"})
	if code != 4 {
		t.Fatalf("pty shell exit %d; out %q err %q", code, out, errOut)
	}
	if strings.Contains(out, "FORBID-5") || !strings.Contains(out, "marker-2") {
		t.Fatalf("pty shell output %q: want marker-2 and no FORBID-5", out)
	}
	if !strings.Contains(errOut, "the line was not run") {
		t.Fatalf("pty shell stderr %q", errOut)
	}
	w.gw.waitEvent(audit.RequestDeny, func(ev store.AuditEvent) bool {
		return ev.Detail["interactive"] == true && ev.Detail["operation"] == "forbidden" && ev.Detail["command"] == "echo FORBID-$((2+3))"
	})
}
