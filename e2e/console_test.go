// Package e2e holds end-to-end tests that drive the gateway from outside,
// as its users do: here, the web console in a real browser.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/server"
	"github.com/portcullis/portcullis/internal/testenv"
)

// chromiumPath is Debian's Chromium, which `make test-deps` installs.
// Playwright is pointed at it and never downloads a browser of its own.
const chromiumPath = "/usr/bin/chromium"

// TestConsole drives the web console in headless Chromium against a real
// gateway and a real target: log in, visit every page, create a policy in
// the editor, create an API key and use it, search a recording and play
// the hit, watch a live session and kill it, log out, then log in as an
// auditor and see only what that role allows. The browser part is
// console.mjs; this test builds the world it runs in and keeps the
// screenshots under e2e/output/.
func TestConsole(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath)
	// The browser and node are not optional here: make test installs
	// them, so their absence is a broken setup, not a reason to skip.
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: run `make test-deps` (it installs Debian's chromium)", chromiumPath)
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is missing: install Node.js (make test-deps lists what the tests need)")
	}
	if _, err := os.Stat("../web/node_modules/playwright-core/package.json"); err != nil {
		t.Fatal("web/node_modules/playwright-core is missing: run `make assets` (npm ci in web/)")
	}

	sshd := testenv.StartSSHD(t)
	unixUser := sshd.AddUser(t)
	dir := testenv.ShortTempDir(t)
	cfg, err := config.Parse([]string{"--data-dir", filepath.Join(dir, "d"), "--ssh-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0",
		"--shutdown-timeout", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.APIAddr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	})

	admin := adminClient(cfg.AdminSocket)
	const user, auditor, target = "ada", "audrey", "web1"
	key := testenv.NewClientKey(t, dir)
	admin.apply(t, fmt.Sprintf(`
kind: User
name: %[1]s
roles: [admin]
ssh_keys: [%[2]q]
---
kind: Target
name: %[3]s
address: %[4]s
---
kind: Account
name: %[5]s
target: %[3]s
---
kind: Policy
name: ada-web1
type: target-access
subjects: {users: [%[1]s]}
targets: {names: [%[3]s]}
target_users: [%[5]s]
actions: [shell, exec, file-transfer]
---
kind: Policy
name: record-all
type: session-recording
subjects: {users: [%[1]s]}
targets: {names: [%[3]s]}
---
kind: User
name: %[6]s
roles: [auditor]
---
# Edited from a form in console.mjs: valid_until has no form field and
# must survive the edit.
kind: Policy
name: kept-fields
type: target-access
subjects: {users: [ghost]}
targets: {names: [%[3]s]}
target_users: [%[5]s]
actions: [exec]
valid_until: 2099-01-01T00:00:00Z
`, user, key.AuthorizedKey, target, sshd.Addr, unixUser, auditor))
	var acct resource.Account
	admin.do(t, "GET", "/api/v1/resources/account/"+target+"/"+unixUser, "", nil, http.StatusOK, &acct)
	pub, err := resource.ParseAuthorizedKey(acct.PublicKey)
	if err != nil {
		t.Fatalf("account public key: %v", err)
	}
	sshd.AuthorizeKey(t, unixUser, pub)

	// A finished session with a word to search for, and one still running
	// for the live view and the kill button.
	word, liveWord := "zq"+randomHex(t), "lv"+randomHex(t)
	sshArgs := append(testenv.SSHArgs(dir, key, srv.SSHAddr().String(), srv.HostKey()), "-l", user+"~"+target, "127.0.0.1")
	if out, errOut, code := testenv.Run(t, 30*time.Second, "ssh", append(sshArgs, "echo "+word)...); code != 0 || !strings.Contains(out, word) {
		t.Fatalf("recorded session: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A file transfer, recorded as its operations: the console shows a
	// table of them, not a terminal.
	xferFile := "xf" + randomHex(t) + ".txt"
	if err := os.WriteFile(filepath.Join(dir, xferFile), []byte("file contents\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sftpArgs := append(testenv.SSHOptions(dir, key, srv.SSHAddr().String(), srv.HostKey()), "-b", "-", user+"~"+target+"@127.0.0.1")
	sftp := exec.Command("sftp", sftpArgs...)
	sftp.Stdin = strings.NewReader("put " + filepath.Join(dir, xferFile) + " /tmp/" + xferFile + "\nrm /tmp/" + xferFile + "\n")
	if out, err := sftp.CombinedOutput(); err != nil {
		t.Fatalf("recorded sftp: %v\n%s", err, out)
	}
	live := exec.Command("ssh", append(sshArgs, "echo "+liveWord+"; exec sleep 600")...)
	liveOut, err := live.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var liveErr bytes.Buffer
	live.Stderr = &liveErr
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	liveDone := make(chan error, 1)
	liveReader := bufio.NewReader(liveOut)
	if line, err := liveReader.ReadString('\n'); err != nil || strings.TrimSpace(line) != liveWord {
		_ = live.Process.Kill()
		t.Fatalf("live session printed %q (%v); stderr %q", line, err, liveErr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, liveReader); liveDone <- live.Wait() }()
	t.Cleanup(func() { _ = live.Process.Kill() })

	// The search index is committed in batches: wait until the word is
	// found, so that the browser's search has something to find.
	var recID string
	waitFor(t, "the recording's search index to hold "+word, func() bool {
		var hits []struct{ ID string }
		admin.do(t, "GET", "/api/v1/recordings/search?q="+url.QueryEscape(word), "", nil, http.StatusOK, &hits)
		if len(hits) > 0 {
			recID = hits[0].ID
		}
		return len(hits) > 0
	})
	// The recording is edited on disk once it has ended: the player must
	// warn (console.mjs, TAMPERED).
	waitFor(t, "the recording to end", func() bool {
		var rec struct{ State string }
		admin.do(t, "GET", "/api/v1/recordings/"+url.PathEscape(recID), "", nil, http.StatusOK, &rec)
		return rec.State == "ended"
	})
	castPath := filepath.Join(cfg.RecordingsDir, recID+".cast")
	cast, err := os.ReadFile(castPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(castPath, bytes.Replace(cast, []byte("{"), []byte(`{"edited":true,`), 1), 0o600); err != nil {
		t.Fatal(err)
	}

	password, auditorPassword := "correct horse "+randomHex(t), "battery staple "+randomHex(t)
	for name, pw := range map[string]string{user: password, auditor: auditorPassword} {
		admin.do(t, "POST", "/api/v1/users/"+name+"/password", "application/json",
			strings.NewReader(fmt.Sprintf(`{"password": %q}`, pw)), http.StatusNoContent, nil)
	}

	outDir, err := filepath.Abs(filepath.Join("output", "console-"+time.Now().UTC().Format("20060102T150405Z")))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots go to %s", outDir)
	nctx, ncancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer ncancel()
	node := exec.CommandContext(nctx, nodeBin, "console.mjs")
	// The admin's walk through the forms creates a second target on the
	// same sshd, an account on it whose key the browser installs (as an
	// admin would paste it into authorized_keys), and connects with the
	// ssh line the console shows, through these client options.
	carolKey, audreyKey := testenv.NewClientKey(t, dir), testenv.NewClientKey(t, dir)
	clientOpts := testenv.SSHArgs(dir, key, srv.SSHAddr().String(), srv.HostKey())
	clientOpts = clientOpts[:len(clientOpts)-2] // the shown line has its own -p PORT
	optsJSON, err := json.Marshal(clientOpts)
	if err != nil {
		t.Fatal(err)
	}
	node.Env = append(os.Environ(),
		"SSH_CLIENT_OPTS="+string(optsJSON), "TARGET_ADDR="+sshd.Addr,
		"AUTHORIZED_KEYS_FILE="+filepath.Join(sshd.Dir, "authorized_keys", unixUser),
		"NEW_USER_KEY="+carolKey.AuthorizedKey, "AUDITOR_SSH_KEY="+audreyKey.AuthorizedKey, "TYPED_WORD=ty"+randomHex(t),
		"BASE_URL=https://"+srv.APIAddr().String(),
		"USER="+user, "PASSWORD="+password, "AUDITOR="+auditor, "AUDITOR_PASSWORD="+auditorPassword,
		"WORD="+word, "LIVE_WORD="+liveWord, "TAMPERED=1", "XFER_FILE="+xferFile,
		"TARGET="+target, "ACCOUNT="+unixUser, "OUT_DIR="+outDir)
	out, err := node.CombinedOutput()
	t.Logf("node console.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("the browser test failed (%v); its output and screenshots are above and in %s", err, outDir)
	}

	// The kill button ended the live session: the client is told so.
	select {
	case <-liveDone:
		if !strings.Contains(liveErr.String(), "ended by "+user) {
			t.Errorf("killed session's client saw %q, want it to say who ended it", liveErr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the live session still runs after the console killed it")
	}
}

// admin is a client of the admin API on the unix socket, where the caller
// is the local superuser.
type admin struct{ c *http.Client }

func adminClient(socket string) admin {
	return admin{c: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}}
}

// do sends one request and checks its status; out, if not nil, receives
// the JSON answer.
func (a admin) do(t *testing.T, method, path, contentType string, body io.Reader, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://admin"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := a.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

func (a admin) apply(t *testing.T, yaml string) {
	t.Helper()
	a.do(t, "POST", "/api/v1/apply", "application/yaml", strings.NewReader(yaml), http.StatusOK, nil)
}

// waitFor polls cond until it holds; the deadline only keeps a broken
// gateway from hanging the run.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
