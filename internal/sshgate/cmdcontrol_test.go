package sshgate_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// cmdWorld is a world whose policy for alice can be rewritten, with files
// planted in the target account's home.
type cmdWorld struct {
	*world
	home string
}

func newCmdWorld(t *testing.T) *cmdWorld {
	w := newWorld(t, "exec")
	return &cmdWorld{world: w, home: filepath.Join(w.sshd.Dir, "home", w.unixUser)}
}

// policy rewrites alice's policy on web1.
func (w *cmdWorld) policy(actions, commands string) {
	w.gw.apply(fmt.Sprintf(`
kind: Policy
name: alice-web1
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [%s]
actions: [%s]
commands: %s
`, w.unixUser, actions, commands))
}

// plant writes a file the target account owns in its home.
func (w *cmdWorld) plant(t *testing.T, name, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(w.home, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	u, err := user.Lookup(w.unixUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func (w *cmdWorld) exists(name string) bool {
	_, err := os.Stat(filepath.Join(w.home, name))
	return err == nil
}

// TestExecCommandsJudgedOnParsedShell: every way issue 11 (and since)
// found to run rm past deny ["^rm ", "passwd"], and to run more than ls
// past allow ["^ls( |$)"], is refused through a real sshd, and the file it
// would delete is still there. The allowed forms still run.
func TestExecCommandsJudgedOnParsedShell(t *testing.T) {
	w := newCmdWorld(t)
	w.policy("exec", `{deny: ["^rm ", "passwd"]}`)
	w.plant(t, "script22", "rm f22\n", 0o644)
	w.plant(t, "script38", "rm f38\n", 0o644)

	bypasses := []struct{ file, cmd string }{
		{"f1", " rm f1"},
		{"f2", `\rm f2`},
		{"f3", "r''m f3"},
		{"f4", "true; rm f4"},
		{"f5", "$(echo rm) f5"},
		{"f6", "true\nrm f6"},
		{"f7", "env rm f7"},
		{"f8", "bash -c 'rm f8'"},
		{"f9", "/bin/rm f9"},
		{"f10", "\trm f10"},
		{"f11", "command rm f11"},
		{"f12", "echo f12 | xargs rm"},
		{"f13", `find . -name f13 -exec rm {} \;`},
		{"f14", "echo `rm f14`"},
		{"f15", "exec rm f15"},
		{"f16", "nice rm f16"},
		{"f17", "timeout 5 rm f17"},
		{"f18", "sudo -n rm f18"},
		{"f19", `sh -c "sh -c 'rm f19'"`},
		{"f20", "f(){ rm f20; }; f"},
		{"f21", "eval rm f21"},
		{"f22", ". ./script22"},
		{"f23", "CMD=rm; $CMD f23"},
		{"f24", `r\m f24`},
		{"f25", `"rm" f25`},
		{"f26", "(rm f26)"},
		{"f27", "{ rm f27; }"},
		{"f28", "cat <(rm f28)"},
		{"f29", "rm${IFS}f29"},
		{"f30", `$'\x72m' f30`},
		{"f31", "echo x && rm f31"},
		{"f32", "nohup rm f32"},
		{"f33", "env -i PATH=/bin:/usr/bin rm f33"},
		{"f34", "stdbuf -o0 rm f34"},
		{"f35", "echo rm f35 | sh"},
		{"f36", "bash < script38; rm f36"},
		{"f37", "cat <<E\n$(rm f37)\nE"},
		{"f38", "sh script38 </dev/null; sh < script38"},
		{"f39", `python3 -c 'import os; os.remove("f39")'`},
		{"f40", `perl -e 'unlink "f40"'`},
		{"f41", "{rm,f41}"},
		{"f42", "/bin/r? f42"},
		{"f43", "ls /tmp >/dev/null; exec /usr/bin/env rm f43"},
	}
	for _, b := range bypasses {
		w.plant(t, b.file, "x", 0o644)
	}
	for _, b := range bypasses {
		t.Run(b.cmd, func(t *testing.T) {
			_, errOut, code := w.ssh("", "alice~web1", nil, b.cmd)
			if code == 0 || !strings.Contains(errOut, "portcullis: access denied: command denied by policy alice-web1") {
				t.Errorf("%q: exit %d, stderr %q: want a denial", b.cmd, code, errOut)
			}
			if !w.exists(b.file) {
				t.Errorf("%q deleted %s", b.cmd, b.file)
			}
		})
	}
	// passwd, in any spelling, is not run either.
	for _, cmd := range []string{`pass""wd --help`, "pass''wd --help", `/usr/bin/passwd --help`, "env passwd --help"} {
		out, errOut, code := w.ssh("", "alice~web1", nil, cmd)
		if code == 0 || strings.Contains(out+errOut, "Usage") || !strings.Contains(errOut, "command denied by policy alice-web1") {
			t.Errorf("%q: exit %d, out %q, stderr %q: want a denial", cmd, code, out, errOut)
		}
	}
	// Unjudgeable constructs name themselves.
	if _, errOut, _ := w.ssh("", "alice~web1", nil, "eval rm f21"); !strings.Contains(errOut, "eval cannot be judged") {
		t.Errorf("eval: stderr %q", errOut)
	}

	// The allowed forms still work under the deny list.
	w.plant(t, "a b", "x", 0o644)
	for cmd, want := range map[string]string{
		"uptime":            "load average",
		"cat /proc/loadavg": "/",
		"ls -la /etc":       "total",
		`ls "a b"`:          "a b",
		"echo rm is ok":     "rm is ok",
	} {
		out, errOut, code := w.ssh("", "alice~web1", nil, cmd)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("%q: exit %d, out %q, stderr %q", cmd, code, out, errOut)
		}
	}

	// An allow list admits a command only when every command is allowed.
	w.policy("exec", `{allow: ["^ls( |$)", "^uptime$", "^cat /proc/loadavg$"]}`)
	for _, cmd := range []string{"ls ; id -un", "ls -d / && whoami", "ls $(id -un)", "ls | sh", "ls\nid -un"} {
		out, errOut, code := w.ssh("", "alice~web1", nil, cmd)
		if code == 0 || strings.Contains(out, w.unixUser) || !strings.Contains(errOut, "access denied") {
			t.Errorf("%q: exit %d, out %q, stderr %q: want a denial", cmd, code, out, errOut)
		}
	}
	for cmd, want := range map[string]string{"uptime": "load average", "cat /proc/loadavg": "/", "ls -la /etc": "total", `ls "a b"`: "a b"} {
		out, errOut, code := w.ssh("", "alice~web1", nil, cmd)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("allow list, %q: exit %d, out %q, stderr %q", cmd, code, out, errOut)
		}
	}
}

// TestExecReviewBypasses: ways found in the review of issue 11 to run rm
// past deny ["^rm "] through a real sshd and bash: a carriage return the
// parser read as a blank ("\r#" is a comment to it, a word to bash),
// jobs -x, env -- NAME=VALUE, a nameref or an integer variable through
// which a plain assignment runs code, variables whose assignment bash
// evaluates as arithmetic, ${!x}, and variable names computed for read,
// export, declare, printf -v and [ -v ]. Each is refused and its file
// stays.
func TestExecReviewBypasses(t *testing.T) {
	w := newCmdWorld(t)
	w.policy("exec", `{deny: ["^rm "]}`)
	bypasses := []struct{ file, cmd string }{
		{"g1", "ls \r#; rm g1"},
		{"g2", "jobs -x rm g2"},
		{"g3", "env -- A=b rm g3"},
		{"g4", "declare -n r=PS4; r='$(rm g4)'; set -x; :"},
		{"g5", "declare -n r; r=PS4; r='$(rm g5)'; set -x; :"},
		{"g6", "declare -i x; x='a[$(rm g6)]'"},
		{"g7", "RANDOM='a[$(rm g7)]'"},
		{"g8", "x='a[$(rm g8)]'; echo ${!x}"},
		{"g9", "x=PS4; read $x <<< '$(rm g9)'; set -x; :"},
		{"g10", `x='PS4=$(rm g10)'; export "$x"; set -x; :`},
		{"g11", "x='-n r=PS4'; declare $x; r='$(rm g11)'; set -x; :"},
		{"g12", `x=PS4; printf -v "$x" %s '$(rm g12)'; set -x; :`},
		{"g13", `x='a[$(rm g13)]'; [ -v "$x" ]`},
		{"g14", "BASH_COMPAT='a[$(rm g14)]'"},
		{"g15", "builtin declare -n r=PS4; r='$(rm g15)'; set -x; :"},
		{"g16", `perl5.36.0 -e 'unlink "g16"'`},
		{"g17", "true # x \\\nrm g17"},
		{"g18", "time -- rm g18"},
	}
	for _, b := range bypasses {
		w.plant(t, b.file, "x", 0o644)
	}
	for _, b := range bypasses {
		t.Run(b.cmd, func(t *testing.T) {
			_, errOut, code := w.ssh("", "alice~web1", nil, b.cmd)
			if code == 0 || !strings.Contains(errOut, "portcullis: access denied: command denied by policy alice-web1") {
				t.Errorf("%q: exit %d, stderr %q: want a denial", b.cmd, code, errOut)
			}
			if !w.exists(b.file) {
				t.Errorf("%q deleted %s", b.cmd, b.file)
			}
		})
	}

	// Under allow ["^ls( |$)"], a transparent wrapper's own options must
	// not write or read files (time -o, xargs -a), nor a comment hide a
	// second command.
	w.policy("exec", `{allow: ["^ls( |$)"]}`)
	for _, cmd := range []string{"/usr/bin/time -o tplant -f 'id > pwned' ls", "xargs -a /etc/passwd ls", "ls # \\\nid -un"} {
		out, errOut, code := w.ssh("", "alice~web1", nil, cmd)
		if code == 0 || strings.Contains(out, w.unixUser) || strings.Contains(errOut, "root:") || !strings.Contains(errOut, "access denied") {
			t.Errorf("%q: exit %d, out %q, stderr %q: want a denial", cmd, code, out, errOut)
		}
	}
	if w.exists("tplant") {
		t.Error("time -o wrote its file")
	}
}

// TestInteractiveCommentContinuation: a comment ending in a backslash
// ends at the newline for bash, but the parser joined the next line to it
// ("true # x \<newline>rm f" read as "true rm f"): the joined line is
// refused with and without a pty, and the file stays. So is a line with a
// carriage return typed with Ctrl-V.
func TestInteractiveCommentContinuation(t *testing.T) {
	w := newCmdWorld(t)
	w.policy("shell", `{deny: ["^rm "]}`)
	w.plant(t, "k1", "x", 0o644)
	w.plant(t, "k2", "x", 0o644)
	w.plant(t, "k3", "x", 0o644)
	out, errOut, code := w.ssh("true # x \\\nrm k1\necho after-$((1+2))\n", "alice~web1", []string{"-T"})
	if code != 0 || !strings.Contains(out, "after-3") || !strings.Contains(errOut, "the line was not run") {
		t.Errorf("no pty: exit %d, out %q, stderr %q", code, out, errOut)
	}
	// With a pty, Ctrl-V Ctrl-M puts a carriage return in the line: bash
	// reads "\r#" as a word, so the "#" starts no comment. The lines are
	// typed once the shell answers: the Ctrl-C that drops a refused
	// continued line would end a shell that has not yet set up its
	// signal handlers (typed ahead of the prompt on a loaded machine).
	sh := w.interactive(t)
	sh.send("echo ready-$((3+4))\r")
	sh.wait("ready-7")
	sh.send("true # x \\\rrm k2\r")
	sh.waitCount("the line was not run", 1)
	sh.send("true \x16\r#; rm k3\r")
	sh.waitCount("the line was not run", 2)
	sh.send("echo after-$((2+3))\r")
	sh.wait("after-5")
	sh.send("exit 0\r")
	sh.close()
	for _, f := range []string{"k1", "k2", "k3"} {
		if !w.exists(f) {
			t.Errorf("%s deleted", f)
		}
	}
}

// TestExecInteractiveShellNeedsShell: an exec that starts a shell or an
// interpreter reading the session is a shell session: refused without the
// shell action, and line-checked with it.
func TestExecInteractiveShellNeedsShell(t *testing.T) {
	w := newCmdWorld(t)
	w.policy("exec", `{deny: ["^rm "]}`)
	w.plant(t, "s1", "x", 0o644)
	for _, c := range []struct {
		flags []string
		cmd   string
	}{
		{[]string{"-tt"}, "bash -i"},
		{nil, "bash"},
		{nil, "sh -s"},
		{nil, "python3"},
		{[]string{"-tt"}, "exec zsh"},
	} {
		out, errOut, code := w.ssh("rm s1\nid -un\n", "alice~web1", c.flags, c.cmd)
		if code == 0 || strings.Contains(out, w.unixUser) || !strings.Contains(errOut, "is not granted shell") {
			t.Errorf("%q: exit %d, out %q, stderr %q: want refused for lack of shell", c.cmd, code, out, errOut)
		}
	}
	if !w.exists("s1") {
		t.Fatal("s1 deleted")
	}

	// With shell granted, the lines are checked like a shell's.
	w.policy("exec, shell", `{deny: ["^rm "]}`)
	out, errOut, code := w.ssh("rm s1\necho line-$((1+1))\n", "alice~web1", nil, "bash")
	if code != 0 || out != "line-2\n" || !strings.Contains(errOut, "the line was not run") {
		t.Fatalf("bash via exec: exit %d, out %q, stderr %q", code, out, errOut)
	}
	if !w.exists("s1") {
		t.Fatal("s1 deleted through bash started by exec")
	}
	// An exec with a pty is line-checked too.
	out, errOut, code = w.ssh("rm s1\recho pty-$((2+2))\rexit 5\r", "alice~web1", []string{"-tt"}, "bash -i")
	if code != 5 || !strings.Contains(out, "pty-4") || !strings.Contains(errOut, "the line was not run") {
		t.Fatalf("bash -i with a pty: exit %d, out %q, stderr %q", code, out, errOut)
	}
	if !w.exists("s1") {
		t.Fatal("s1 deleted through bash -i with a pty")
	}
	// An exec with a pty is line-checked even when the program is not a
	// shell the parser knows: awk running each input line.
	w.policy("exec", `{deny: ["^rm "]}`)
	_, errOut, _ = w.ssh("rm s1\r\x04", "alice~web1", []string{"-tt"}, `awk '{system($0)}'`)
	if !strings.Contains(errOut, "the line was not run") {
		t.Fatalf("awk with a pty: stderr %q", errOut)
	}
	if !w.exists("s1") {
		t.Fatal("s1 deleted through awk with a pty")
	}
}

// TestInteractiveContinuationsJoined: "r\<newline>m f" is one command to
// the shell, and to the gate, with and without a pty; so is a here-document.
func TestInteractiveContinuationsJoined(t *testing.T) {
	w := newCmdWorld(t)
	w.policy("shell", `{deny: ["^rm "]}`)
	for _, f := range []string{"c1", "c2", "c3", "c4"} {
		w.plant(t, f, "x", 0o644)
	}
	// Without a pty.
	out, errOut, code := w.ssh("r\\\nm c1\ncat <<E\n$(rm c2)\nE\necho after-$((1+2))\n", "alice~web1", []string{"-T"})
	if code != 0 || !strings.Contains(out, "after-3") || strings.Count(errOut, "the line was not run") != 2 {
		t.Fatalf("no pty: exit %d, out %q, stderr %q", code, out, errOut)
	}
	// With a pty; history expansion ("!!:s/echo //" makes "rm c5" of the
	// line before) is denied too.
	w.plant(t, "c5", "x", 0o644)
	// Typed once the shell answers: the Ctrl-C that drops a refused
	// continued line would end a shell still starting up.
	sh := w.interactive(t)
	sh.send("echo ready-$((3+4))\r")
	sh.wait("ready-7")
	for i, line := range []string{"r\\\rm c3\r", "echo 'open\rquote'; rm c4\r", "echo rm c5\r!!:s/echo //\r"} {
		sh.send(line)
		sh.waitCount("the line was not run", i+1)
	}
	sh.send("echo after-$((2+3))\r")
	sh.wait("after-5")
	if !strings.Contains(sh.stderr.String()+sh.out.String(), "history expansion") {
		t.Errorf("pty: no history expansion refusal: out %q, stderr %q", sh.out.String(), sh.stderr.String())
	}
	sh.send("exit 0\r")
	sh.close()
	for _, f := range []string{"c1", "c2", "c3", "c4", "c5"} {
		if !w.exists(f) {
			t.Errorf("%s deleted", f)
		}
	}
	// The audit trail has the joined command, as the shell saw it.
	w.gw.waitEvent(audit.RequestDeny, func(ev store.AuditEvent) bool {
		return ev.Detail["command"] == "r\\\nm c3"
	})
}

// TestAltScreenNeedsFullscreenProgram: output alone (printf of the
// alternate-screen sequence) does not switch line checking off; a program
// listed in commands.fullscreen does, only until it leaves the alternate
// screen.
func TestAltScreenNeedsFullscreenProgram(t *testing.T) {
	w := newCmdWorld(t)
	w.policy("shell", `{deny: ["^rm "], fullscreen: [fakefull]}`)
	// A stand-in for vim: enters the alternate screen, reads one line
	// (what the user types there is the program's, not the shell's), and
	// leaves.
	w.plant(t, "fakefull", "#!/bin/sh\nprintf '\\033[?1049h'; echo in-full; read x; printf '\\033[?1049l'; echo out-full\n", 0o755)
	for _, f := range []string{"a1", "a2", "a3"} {
		w.plant(t, f, "x", 0o644)
	}
	sh := w.interactive(t)

	// 1. printf enters the alternate screen: checking stays on.
	sh.send("printf '\\033[?1049h'; echo mark-$((1+1))\r")
	sh.wait("mark-2")
	sh.send("rm a1; echo ran-$((1+2))\r")
	sh.wait("the line was not run")
	// 2. The listed program pauses checking while it runs: "rm a2" is its
	// input, not a shell line, and passes unchecked.
	sh.send("./fakefull\r")
	sh.wait("in-full")
	sh.send("rm a2\r")
	sh.wait("out-full")
	// 3. Once it has left, output alone does not pause again.
	sh.send("printf '\\033[?1049h'; echo mark-$((2+2))\r")
	sh.wait("mark-4")
	sh.send("rm a3\r")
	sh.waitCount("the line was not run", 2)
	sh.send("exit 0\r")
	sh.close()
	for _, f := range []string{"a1", "a2", "a3"} {
		if !w.exists(f) {
			t.Errorf("%s deleted", f)
		}
	}
	if strings.Contains(sh.out.String(), "ran-3") {
		t.Error("the line after printf ran")
	}
	w.gw.waitEvent(audit.CommandCheckPaused, func(ev store.AuditEvent) bool {
		return strings.Contains(ev.Message, "full-screen program (alternate screen)")
	})
	w.gw.waitEvent(audit.CommandCheckPaused, func(ev store.AuditEvent) bool {
		return strings.Contains(ev.Message, "without a full-screen program")
	})
}

// shellSession is an interactive pty session through the gateway, driven
// step by step so that each line is sent only after the output it depends
// on has arrived.
type shellSession struct {
	t      *testing.T
	cl     *ssh.Client
	sess   *ssh.Session
	stdin  io.WriteCloser
	out    *lockedBuffer
	stderr *lockedBuffer
}

func (w *cmdWorld) interactive(t *testing.T) *shellSession {
	t.Helper()
	cl, err := ssh.Dial("tcp", w.gw.addr, &ssh.ClientConfig{
		User: "alice~web1", Auth: []ssh.AuthMethod{ssh.PublicKeys(w.client.Signer)},
		HostKeyCallback: ssh.FixedHostKey(w.gw.hostKey), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
		t.Fatal(err)
	}
	s := &shellSession{t: t, cl: cl, sess: sess, out: &lockedBuffer{}, stderr: &lockedBuffer{}}
	s.stdin, _ = sess.StdinPipe()
	sess.Stdout, sess.Stderr = s.out, s.stderr
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

func (s *shellSession) send(p string) {
	if _, err := io.WriteString(s.stdin, p); err != nil {
		s.t.Fatal(err)
	}
}

// wait waits for want in stdout or stderr.
func (s *shellSession) wait(want string) { s.waitCount(want, 1) }

func (s *shellSession) waitCount(want string, n int) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(s.out.String()+s.stderr.String(), want) < n {
		if time.Now().After(deadline) {
			s.t.Fatalf("never saw %q x%d; stdout %q stderr %q", want, n, s.out.String(), s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *shellSession) close() {
	s.sess.Close()
	s.cl.Close()
}

// TestHistoryJoinsContinuedLines: without command rules the history is
// still built from keystrokes; a line continued with a backslash is logged
// as the one command the shell ran, not as two.
func TestHistoryJoinsContinuedLines(t *testing.T) {
	w := newWorld(t, "shell")
	out, errOut, code := w.ssh("echo hist\\\r-$((1+1))\rexit 0\r", "alice~web1", []string{"-tt"})
	if code != 0 || !strings.Contains(out, "hist-2") {
		t.Fatalf("exit %d, out %q, stderr %q", code, out, errOut)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cmds, err := w.gw.store.ListCommands(context.Background(), store.CommandFilter{User: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, c := range cmds {
			lines = append(lines, c.Command)
		}
		if slices.Contains(lines, "echo hist\\\n-$((1+1))") {
			if slices.Contains(lines, "-$((1+1))") || slices.Contains(lines, "echo hist\\") {
				t.Fatalf("history has the fragments: %q", lines)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("history %q: no joined line", lines)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestInteractiveRecalledLineEdited: a comment line is allowed and goes
// into bash's history; recalled (Up) and stripped of its "#" (Home,
// Delete) it runs rm, and the gate sees keys it cannot follow, not the
// line: under command rules such an uncertain line is refused (unless
// the policy says commands.uncertain: allow, the best-effort mode).
func TestInteractiveRecalledLineEdited(t *testing.T) {
	w := newCmdWorld(t)
	w.policy("shell", `{deny: ["^rm "]}`)
	w.plant(t, "h1", "x", 0o644)
	sh := w.interactive(t)
	sh.send("#rm h1\r")
	sh.send("echo mark-$((1+1))\r")
	sh.wait("mark-2")
	// Up twice (past the echo), Home, Delete, Enter.
	sh.send("\x1b[A\x1b[A\x1b[H\x1b[3~\r")
	sh.send("echo mark-$((2+2))\r")
	sh.wait("mark-4")
	sh.send("exit 0\r")
	sh.close()
	if !w.exists("h1") {
		t.Errorf("a recalled, edited line ran rm: stdout %q stderr %q", sh.out.String(), sh.stderr.String())
	}
	if !strings.Contains(sh.stderr.String()+sh.out.String(), "could not read this line exactly") {
		t.Errorf("no refusal shown: stdout %q stderr %q", sh.out.String(), sh.stderr.String())
	}
}

// TestInteractiveUncertainLines: a Tab-completed line is refused under
// command rules by default, and judged as reconstructed with
// commands.uncertain: allow (the best-effort mode).
func TestInteractiveUncertainLines(t *testing.T) {
	for _, tc := range []struct {
		rules   string
		allowed bool
	}{
		{`{deny: ["^rm "]}`, false},
		{`{deny: ["^rm "], uncertain: allow}`, true},
	} {
		t.Run(tc.rules, func(t *testing.T) {
			w := newCmdWorld(t)
			w.policy("shell", tc.rules)
			sh := w.interactive(t)
			// "ech" + Tab completes to "echo " in bash: the gateway sees
			// a Tab it cannot follow.
			sh.send("ech\t tab-$((3+4))\r")
			sh.send("echo mark-$((4+4))\r")
			sh.wait("mark-8")
			sh.send("exit 0\r")
			sh.close()
			out := sh.out.String() + sh.stderr.String()
			if ran := strings.Contains(out, "tab-7"); ran != tc.allowed {
				t.Errorf("completed line ran: %v, want %v; output %q", ran, tc.allowed, out)
			}
			if refused := strings.Contains(out, "could not read this line exactly"); refused == tc.allowed {
				t.Errorf("refusal shown: %v, want %v; output %q", refused, !tc.allowed, out)
			}
		})
	}
}
