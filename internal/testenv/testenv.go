// Package testenv is the harness for integration tests that need real
// programs around the gateway: a real OpenSSH sshd as the target server on
// loopback, throwaway unix users on this machine, and the real ssh, scp,
// sftp and rsync clients.
//
// Portcullis is a proxy, so its tests are only as good as the peers they
// talk to; an in-process Go server would share x/crypto's quirks with the
// gateway and hide interop bugs. The cost is that these tests need root and
// installed binaries. The policy for that is in Require and RequireRoot:
// on a developer machine a missing prerequisite skips the test, in CI
// (CI=true) it fails it, so CI can never go green by skipping everything.
//
// Everything here is safe for parallel tests and parallel test packages:
// ports, directories and user names are unique, and every resource is
// released with t.Cleanup.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// inCI reports whether we run in CI, where missing prerequisites are
// failures rather than skips. CI systems set CI=true; accept any spelling
// strconv understands so CI=1 also counts.
func inCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// unmet skips (developer machine) or fails (CI) the test. It returns so
// that callers handed a fake testing.TB, whose Skip does not stop the
// goroutine, still stop by returning.
func unmet(t testing.TB, ci bool, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if ci {
		t.Fatalf("%s (CI=true: CI must provide every prerequisite)", msg)
		return
	}
	t.Skipf("skipping: %s (set CI=true to make this a failure)", msg)
}

// sbinDirs are searched after PATH because a non-root PATH often lacks
// them, yet sshd and useradd live there.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// LookBinary finds a program by name in PATH or the sbin directories, or
// checks an absolute path. It reports the path and whether it was found.
func LookBinary(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	if strings.ContainsRune(name, '/') {
		return "", false
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// Require skips the test with a clear message if one of the binaries
// (names or absolute paths) is missing and we are not in CI (env CI=true);
// in CI it fails the test instead, because CI must have everything.
func Require(t testing.TB, binaries ...string) {
	t.Helper()
	require(t, inCI(), binaries...)
}

func require(t testing.TB, ci bool, binaries ...string) {
	t.Helper()
	var missing []string
	for _, b := range binaries {
		if _, ok := LookBinary(b); !ok {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		unmet(t, ci, "required programs not installed: %s", strings.Join(missing, ", "))
	}
}

// RequireRoot applies Require's policy to tests that need root: creating
// unix users, and running sshd, which must be root to switch to them.
func RequireRoot(t testing.TB) {
	t.Helper()
	requireRoot(t, inCI(), os.Geteuid())
}

func requireRoot(t testing.TB, ci bool, euid int) {
	t.Helper()
	if euid != 0 {
		unmet(t, ci, "test needs root (it creates unix users and runs sshd); running as uid %d", euid)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. It
// is inherently racy (someone may take the port before the caller binds
// it), so servers started on it should retry on "address in use" as
// StartSSHD does.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("FreePort: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("FreePort: close: %v", err)
	}
	return port
}

// ShortTempDir creates a temporary directory with a short path and
// removes it when the test ends. Unix socket paths (ssh ControlPath,
// agent sockets, forwarded sockets) must stay under 108 bytes, and
// t.TempDir's paths, which embed the test name, easily exceed that.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	return shortTempDirIn(t, "")
}

func shortTempDirIn(t testing.TB, base string) string {
	t.Helper()
	dir, err := os.MkdirTemp(base, "pc")
	if err != nil {
		t.Fatalf("ShortTempDir: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("ShortTempDir: cleanup: %v", err)
		}
	})
	return dir
}

// waitDelay bounds how long Wait waits for a process's output pipes after
// the process ended or was killed: ssh and sshd fork children that inherit
// the pipes, and one that lingers must not hang the test.
const waitDelay = 3 * time.Second

// Run runs a program with a timeout and returns its output and exit code,
// so no test can hang on a client that waits forever. Stdin is empty.
//
// A program that cannot be started, is killed by a signal or runs past
// the timeout is reported with t.Errorf (not Fatalf, so Run is safe from
// any goroutine) and yields code -1 with whatever output it produced.
func Run(t testing.TB, timeout time.Duration, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return RunInput(t, timeout, "", name, args...)
}

// RunInput is Run with the given text on the program's standard input.
func RunInput(t testing.TB, timeout time.Duration, stdin, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout = &outBuf
	cmd.Stderr = &errBuf
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.WaitDelay = waitDelay
	line := shellJoin(append([]string{name}, args...))
	t.Logf("run: %s", line)
	err := cmd.Run()
	stdout, stderr = outBuf.String(), errBuf.String()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Errorf("run %s: timed out after %v\nstdout:\n%s\nstderr:\n%s", line, timeout, stdout, stderr)
		return stdout, stderr, -1
	case err == nil:
		return stdout, stderr, 0
	case errors.As(err, &exitErr) && exitErr.ExitCode() >= 0:
		return stdout, stderr, exitErr.ExitCode()
	default:
		t.Errorf("run %s: %v\nstdout:\n%s\nstderr:\n%s", line, err, stdout, stderr)
		return stdout, stderr, -1
	}
}

// shellJoin quotes args for a POSIX shell, so logged command lines can be
// pasted into a terminal. rsync's -e parser also honours single quotes, so
// the result works there for arguments without a single quote in them.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@%+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// AsciinemaCat runs the real `asciinema cat FILE` and returns what it
// printed. asciinema 2.2 opens /dev/tty even for cat, which tests (and CI)
// do not have, so it runs under script(1), which gives it a pty.
func AsciinemaCat(t testing.TB, file string) (out string, code int) {
	t.Helper()
	Require(t, "asciinema", "script")
	stdout, stderr, code := Run(t, 60*time.Second, "script", "-q", "-e", "-c", shellJoin([]string{"asciinema", "cat", file}), "/dev/null")
	if code != 0 {
		return stdout + stderr, code
	}
	return stdout, code
}
