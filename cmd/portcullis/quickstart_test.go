package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/testenv"
)

// quickStartBlock returns the README's copy-paste example of the quick
// start, as printed.
func quickStartBlock(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "Terminal 2, a complete copy-paste example")
	if i < 0 {
		t.Fatal("README has no quick start example")
	}
	var lines []string
	started := false
	for _, l := range strings.Split(s[i:], "\n") {
		code := strings.HasPrefix(l, "    ")
		switch {
		case code:
			started = true
			lines = append(lines, strings.TrimPrefix(l, "    "))
		case started && l != "":
			return strings.Join(lines, "\n") + "\n"
		case started:
			lines = append(lines, "")
		}
	}
	t.Fatal("the quick start example does not end")
	return ""
}

// TestQuickStart runs the README's quick start as a fresh ordinary user of
// this machine, with no sshd and no SSH key of theirs: the gateway as
// `make run` starts it (the binary built here, the same flags) and then the
// copy-paste lines exactly as printed, but for the SSH port (a free one,
// not 2222) and the first connection's host key question, which the test
// answers in the user's ssh_config. It checks that the session ran as the
// user and was recorded, and prints how long the lines took.
func TestQuickStart(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", "ssh-keygen", "bash", "runuser")
	block := quickStartBlock(t)
	// The sshd harness only makes the user here: the quick start needs
	// no sshd, and none is contacted.
	name := testenv.StartSSHD(t).AddUser(t)
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	work := filepath.Join(u.HomeDir, "portcullis")
	if err := os.MkdirAll(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(work, "bin", "portcullis")
	// Stamped as make run stamps a clone without release tags: the
	// commit as the version, which the in-process agent must accept.
	if out, err := exec.Command("go", "build", "-ldflags", "-X github.com/portcullis/portcullis/internal/buildinfo.Version=0123abc",
		"-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v %s", err, out)
	}
	// No ~/.ssh: the user has no key yet, and the example must make the
	// directory as well as the key. Host key acceptance goes on the
	// command line instead of an ssh_config. (The harness's user comes
	// with one, for the sshd this test never contacts.)
	if err := os.RemoveAll(filepath.Join(u.HomeDir, ".ssh")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{work, filepath.Join(work, "bin"), bin} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	sshPort := testenv.FreePort(t)
	apiPort := testenv.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	serve := exec.CommandContext(ctx, "runuser", "-u", name, "--", bin, "serve", "--data-dir", filepath.Join(work, "data"),
		"--ssh-addr", fmt.Sprintf("127.0.0.1:%d", sshPort), "--api-addr", fmt.Sprintf("127.0.0.1:%d", apiPort), "--pg-addr", "",
		"--local-target")
	serve.Dir = work
	var serveLog strings.Builder
	serve.Stdout, serve.Stderr = &serveLog, &serveLog
	serve.Cancel = func() error { return serve.Process.Signal(os.Interrupt) }
	serve.WaitDelay = 10 * time.Second
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = serve.Wait()
		if t.Failed() {
			t.Logf("gateway log:\n%s", serveLog.String())
		}
	})
	env := []string{"PORTCULLIS_DATA_DIR=" + filepath.Join(work, "data")}
	asUser := func(script string) (string, string, int) {
		return testenv.RunInput(t, 2*time.Minute, script, "runuser", "-u", name, "--", "env", "-C", work,
			"HOME="+u.HomeDir, "USER="+name, env[0], "PATH=/usr/local/bin:/usr/bin:/bin", "bash", "-e")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _, _ := asUser("./bin/portcullis get targets\n")
		if strings.Contains(out, "agent: connected") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("target local never connected; get targets: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	script := strings.ReplaceAll(block, "ssh -p 2222 ",
		fmt.Sprintf("ssh -o StrictHostKeyChecking=accept-new -o BatchMode=yes -o KexAlgorithms=curve25519-sha256 -p %d ", sshPort))
	if script == block {
		t.Fatal("the quick start example no longer runs ssh -p 2222")
	}
	start := time.Now()
	out, errOut, code := asUser(script)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("the quick start failed: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "hello from the quick start") || !strings.Contains(out, "\n"+name+"\n") {
		t.Fatalf("the session did not run as %s:\n%s", name, out)
	}
	// recordings ls lists the session's recording.
	if !strings.Contains(out, "local") {
		t.Fatalf("no recording listed:\n%s", out)
	}
	t.Logf("quick start copy-paste lines ran in %.1f s (no sshd, no existing key)", took.Seconds())
}
