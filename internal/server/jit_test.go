package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/cli"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/testenv"
)

// movingClock is the JIT service's injected clock: the test moves it past
// a grant's end instead of sleeping an hour.
type movingClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *movingClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *movingClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// TestJITWholeFlow runs just-in-time access end to end with the real ssh
// client and a real sshd: erin is refused and told the command; she runs
// it against the HTTPS API with her own API key; frank approves in
// "Slack" (the test serves Slack's side and clicks as Slack delivers a
// click, signed); ssh works; the injected clock passes the grant's end
// and the live session ends with a message; the request stays listed with
// its history.
func TestJITWholeFlow(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath)
	sshd := testenv.StartSSHD(t)
	unixUser := sshd.AddUser(t)
	slack := testenv.StartSlack(t, "C0APPROVALS", map[string]string{"erin@example.com": "UERIN", "frank@example.com": "UFRANK"})

	cfg := testConfig(t)
	dir := filepath.Dir(cfg.DataDir)
	tokenFile, secretFile := filepath.Join(dir, "slack-token"), filepath.Join(dir, "slack-secret")
	if err := os.WriteFile(tokenFile, []byte(slack.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, slack.SigningSecret, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.JIT = &config.JIT{Slack: &config.Slack{BotTokenFile: tokenFile, SigningSecretFile: secretFile, Channel: "C0APPROVALS",
		APIURL: slack.URL, ResponseHosts: []string{slack.ResponseHost()}}}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	clock := &movingClock{}
	srv.jitNow = clock.now
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	run := func(stdin string, args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := cli.Run(context.Background(), append([]string{"--data-dir", cfg.DataDir}, args...), strings.NewReader(stdin), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	key := testenv.NewClientKey(t, dir)
	if out, errOut, code := run(fmt.Sprintf(`
kind: User
name: erin
email: erin@example.com
ssh_keys: [%q]
---
kind: User
name: frank
email: frank@example.com
---
kind: Target
name: web1
address: %s
---
kind: Account
name: %s
target: web1
---
kind: Policy
name: web-child
type: target-access
subjects: {groups: [nobody]}
targets: {names: [web1]}
target_users: [%s]
actions: [shell, exec]
---
kind: Policy
name: web-jit
type: jit
subjects: {users: [erin]}
child_policies: [web-child]
duration: 1h
require_reason: true
approvers: {users: [frank]}
`, key.AuthorizedKey, sshd.Addr, unixUser, unixUser), "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply: %d %s %s", code, out, errOut)
	}
	pubLine, _, code := run("", "account", "pubkey", "web1/"+unixUser)
	if code != 0 {
		t.Fatal("account pubkey failed")
	}
	pub, err := resource.ParseAuthorizedKey(pubLine)
	if err != nil {
		t.Fatal(err)
	}
	sshd.AuthorizeKey(t, unixUser, pub)
	hostKeyLine, err := os.ReadFile(filepath.Join(cfg.DataDir, "ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	hk, err := resource.ParseAuthorizedKey(string(hostKeyLine))
	if err != nil {
		t.Fatal(err)
	}
	sshArgs := testenv.SSHArgs(dir, key, srv.SSHAddr().String(), hk)
	login := "erin~" + unixUser + "~web1"
	ssh := func(command string) (string, string, int) {
		return testenv.Run(t, 30*time.Second, "ssh", append(sshArgs, "-l", login, "127.0.0.1", command)...)
	}

	// 1. Refused, and told the exact command.
	_, stderr, code := ssh("echo granted")
	wantCmd := "portcullis jit request --target web1 --account " + unixUser + ` --reason "..."`
	if code == 0 || !strings.Contains(stderr, wantCmd) {
		t.Fatalf("refusal: code %d, stderr %q, want it to name %q", code, stderr, wantCmd)
	}

	// 2. erin requests with her own API key over HTTPS (no admin socket).
	keyOut, _, code := run("", "apikey", "create", "--name", "laptop", "--kind", "access", "--owner", "erin")
	if code != 0 {
		t.Fatalf("apikey create: %s", keyOut)
	}
	m := regexp.MustCompile(`(?m)^key: (\S+)$`).FindStringSubmatch(keyOut)
	if m == nil {
		t.Fatalf("no key in %q", keyOut)
	}
	keyFile := filepath.Join(dir, "erin.key")
	if err := os.WriteFile(keyFile, []byte(m[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(cfg.DataDir, "api_tls.crt")
	gateway := "https://" + srv.APIAddr().String()
	remote := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := cli.Run(context.Background(), append([]string{"--gateway", gateway, "--api-key-file", keyFile, "--ca-file", caFile}, args...),
			strings.NewReader(""), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	if _, errOut, code := remote("jit", "request", "--target", "web1", "--account", unixUser); code != 2 || !strings.Contains(errOut, "requires a reason") {
		t.Fatalf("request without reason: %d %q", code, errOut)
	}
	// --wait files the request and returns once it is decided.
	var waitOut, waitErr lockedBuffer
	waited := make(chan int, 1)
	go func() {
		waited <- cli.Run(context.Background(), []string{"--gateway", gateway, "--api-key-file", keyFile, "--ca-file", caFile,
			"jit", "request", "--target", "web1", "--account", unixUser, "--reason", "incident 42", "--wait"}, strings.NewReader(""), &waitOut, &waitErr)
	}()
	var id []string
	for deadline := time.Now().Add(time.Minute); id == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no pending request in %q %q", waitOut.Bytes(), waitErr.Bytes())
		}
		id = regexp.MustCompile(`request (req-[a-z0-9]+): pending`).FindStringSubmatch(string(waitOut.Bytes()))
	}
	// erin cannot approve her own request, by API either.
	if _, errOut, code := remote("jit", "approve", id[1]); code != 1 || !strings.Contains(errOut, "own request") {
		t.Fatalf("self-approval: %d %q", code, errOut)
	}

	// 3. frank clicks Approve in Slack.
	var msg testenv.SlackMessage
	for deadline := time.Now().Add(time.Minute); msg.TS == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no Slack message")
		}
		for _, mm := range slack.Messages() {
			if strings.Contains(string(mm.Blocks), id[1]) {
				msg = mm
			}
		}
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	cb := testenv.SignedCallback(t, gateway+"/slack/interactions", slack.SigningSecret, clock.now(),
		slack.BlockActions("UFRANK", msg.Channel, msg.TS, "jit_approve", id[1]))
	resp, err := hc.Do(cb)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("slack callback: %d", resp.StatusCode)
	}

	select {
	case code := <-waited:
		if code != 0 || !strings.Contains(string(waitOut.Bytes()), "approved by frank: policy JIT-") {
			t.Fatalf("jit request --wait: %d %q %q", code, waitOut.Bytes(), waitErr.Bytes())
		}
	case <-time.After(time.Minute):
		t.Fatal("jit request --wait did not return after the approval")
	}
	// 4. ssh works now.
	if out, stderr, code := ssh("echo granted"); code != 0 || strings.TrimSpace(out) != "granted" {
		t.Fatalf("after approval: %d %q %q", code, out, stderr)
	}
	// 5. A live session ends when the grant expires (injected clock).
	live := exec.Command("ssh", append(sshArgs, "-l", login, "127.0.0.1", "echo started; sleep 600")...)
	var liveOut, liveErr lockedBuffer
	live.Stdout, live.Stderr = &liveOut, &liveErr
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- live.Wait() }()
	defer func() { _ = live.Process.Kill() }()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(string(liveOut.Bytes()), "started"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("live session did not start")
		}
	}
	clock.add(time.Hour + time.Minute)
	srv.jit.Wake()
	select {
	case err := <-ended:
		if err == nil || !strings.Contains(string(liveErr.Bytes()), "access revoked") {
			t.Fatalf("live session: %v, stderr %q", err, string(liveErr.Bytes()))
		}
	case <-time.After(time.Minute):
		t.Fatal("live session outlived its grant")
	}
	if _, stderr, code := ssh("echo granted"); code == 0 || !strings.Contains(stderr, wantCmd) {
		t.Fatalf("after expiry: %d %q", code, stderr)
	}

	// 6. The request stays listed, with its whole history.
	out, _, code := run("", "jit", "ls", "--state", "expired", "--json")
	var list []struct{ ID, State string }
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].ID != id[1] {
		t.Fatalf("jit ls: %d %s", code, out)
	}
	out, _, _ = run("", "jit", "show", id[1])
	for _, want := range []*regexp.Regexp{regexp.MustCompile(`requested +cli +erin`), regexp.MustCompile(`approved +slack +frank`),
		regexp.MustCompile(`granted .*JIT-`), regexp.MustCompile(`used +ssh`), regexp.MustCompile(`expired +gateway`)} {
		if !want.MatchString(out) {
			t.Errorf("history lacks %q:\n%s", want, out)
		}
	}
}
