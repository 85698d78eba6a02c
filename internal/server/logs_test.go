package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis/portcullis/internal/cli"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/testenv"
)

// lockedBuffer is a bytes.Buffer several goroutines may log into.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// TestLogIsStructured runs a gateway with its log in JSON mode through a
// day's work (applies, an update, a delete, a session on a real sshd, a
// target that is down, a refused login, a browser refusing the
// self-signed certificate) and checks every line: one JSON object, no key
// twice, no byte arrays or Go struct dumps, no error said twice, and the
// TLS handshake noise at debug, not warn.
func TestLogIsStructured(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath)
	log := dayOfWork(t, func(w *lockedBuffer) slog.Handler {
		return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
	})
	lines := testenv.CheckJSONLog(t, log)
	seen := map[string]bool{}
	for _, l := range lines {
		msg, _ := l["msg"].(string)
		level, _ := l["level"].(string)
		if strings.Contains(msg, "TLS handshake error") {
			seen["handshake"] = true
			if level != "DEBUG" {
				t.Errorf("TLS handshake noise at %s: %v", level, l)
			}
		}
		if typ, _ := l["type"].(string); typ != "" {
			seen[typ] = true
		}
	}
	for _, want := range []string{"handshake", "resource.apply", "resource.delete", "session.start", "session.end", "login.failure"} {
		if !seen[want] {
			t.Errorf("no %s line in the log: the test did not exercise what it checks", want)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", log)
	}
}

// TestTextLogIsReadable is TestLogIsStructured's day in text mode, the
// default: no byte arrays, struct dumps or Go maps, and the line's own
// user key once.
func TestTextLogIsReadable(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath)
	log := dayOfWork(t, func(w *lockedBuffer) slog.Handler { return slog.NewTextHandler(w, nil) })
	applies := 0
	for i, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		for _, leak := range testenv.LogLeaks {
			if strings.Contains(line, leak) {
				t.Errorf("log line %d holds %q: %s", i+1, leak, line)
			}
		}
		if n := strings.Count(line, " user="); n > 1 {
			t.Errorf("log line %d has user= %d times: %s", i+1, n, line)
		}
		if strings.Contains(line, "type=resource.apply") {
			applies++
			if !strings.Contains(line, `detail.changes="[{`) {
				t.Errorf("apply line without its changes as JSON: %s", line)
			}
		}
	}
	if applies == 0 {
		t.Errorf("no resource.apply line: the test did not exercise what it checks\n%s", log)
	}
}

// dayOfWork runs a gateway logging through the handler newHandler makes,
// does a day's work with it, stops it, and returns the log.
func dayOfWork(t *testing.T, newHandler func(*lockedBuffer) slog.Handler) []byte {
	t.Helper()
	sshd := testenv.StartSSHD(t)
	unixUser := sshd.AddUser(t)
	cfg := testConfig(t)
	var logBuf lockedBuffer
	log := slog.New(newHandler(&logBuf))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	defer stop()

	portcullis := func(t *testing.T, stdin string, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := cli.Run(context.Background(), append([]string{"--data-dir", cfg.DataDir}, args...), strings.NewReader(stdin), &out, &errOut); code != 0 {
			t.Fatalf("portcullis %v: exit %d: %s", args, code, errOut.String())
		}
		return out.String()
	}
	dir := testenv.ShortTempDir(t)
	key := testenv.NewClientKey(t, dir)
	stream := fmt.Sprintf(`kind: User
name: alice
ssh_keys: [%q]
---
kind: Target
name: web1
address: %s
---
kind: Target
name: down
address: 127.0.0.1:1
---
kind: Account
name: %s
target: web1
---
kind: Account
name: %s
target: down
---
kind: Policy
name: p
type: target-access
subjects: {users: [alice]}
targets: {names: [web1, down]}
target_users: [%s]
actions: [exec, shell]
`, key.AuthorizedKey, sshd.Addr, unixUser, unixUser, unixUser)
	portcullis(t, stream, "apply", "-f", "-")
	o, err := srv.inv.Get(context.Background(), resource.KindAccount, "web1/"+unixUser)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := resource.ParseAuthorizedKey(o.(*resource.Account).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sshd.AuthorizeKey(t, unixUser, pub)

	args := testenv.SSHArgs(dir, key, srv.SSHAddr().String(), srv.HostKey())
	if out, err := exec.Command("ssh", append(args, "-l", "alice~web1", "127.0.0.1", "echo hi-there")...).CombinedOutput(); err != nil || !strings.Contains(string(out), "hi-there") {
		t.Fatalf("session: %v %s", err, out)
	}
	if out, err := exec.Command("ssh", append(args, "-l", "alice~down", "127.0.0.1", "true")...).CombinedOutput(); err == nil {
		t.Fatalf("a session on a target that is down succeeded: %s", out)
	}
	if out, err := exec.Command("ssh", append(args, "-l", "mallory~web1", "127.0.0.1", "true")...).CombinedOutput(); err == nil {
		t.Fatalf("an unknown user logged in: %s", out)
	}
	// An update that drops a field, and deletions (logged with the
	// resource as it was).
	portcullis(t, strings.Replace(stream, "ssh_keys: ["+fmt.Sprintf("%q", key.AuthorizedKey)+"]", "email: a@example.com", 1), "apply", "-f", "-")
	portcullis(t, "", "delete", "--yes", "policy", "p")
	portcullis(t, "", "delete", "--yes", "account", "down/"+unixUser)
	// A browser meeting the self-signed certificate.
	if c, err := tls.Dial("tcp", srv.APIAddr().String(), &tls.Config{ServerName: "portcullis.invalid"}); err == nil {
		c.Close()
		t.Fatal("TLS with a verifying client succeeded on a self-signed certificate")
	}
	stop()
	return logBuf.Bytes()
}
