package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// ssoGateway is a whole gateway with single sign-on against a mockoidc
// provider in the test process; alice and bob are users linked to
// provider accounts, with no keys.
type ssoGateway struct {
	t   *testing.T
	srv *Server
	op  *mockoidc.MockOIDC
	// clientDir and key are an OpenSSH client whose key no one registered.
	clientDir string
	key       *testenv.ClientKey
}

func startSSOGateway(t *testing.T, cache time.Duration) *ssoGateway {
	t.Helper()
	testenv.Require(t, "ssh")
	op, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	opLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Start(opLn, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Shutdown() })

	cfg := testConfig(t)
	// The redirect URL names the console's port, so the port is chosen
	// before the gateway binds it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.APIAddr = ln.Addr().String()
	ln.Close()
	secret := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(secret, []byte(op.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.OIDC = &config.OIDC{Issuer: op.Issuer(), ClientID: op.ClientID, ClientSecretFile: secret,
		RedirectURL: "https://" + cfg.APIAddr + "/ui/oidc/callback", Scopes: config.StringList{"openid", "email", "profile"},
		GroupsClaim: "groups", UsernameClaim: "preferred_username", Timeout: config.Duration(5 * time.Second),
		SSOCache: config.Duration(cache)}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	objs, err := resource.DecodeYAML([]byte(fmt.Sprintf(`
kind: User
name: alice
oidc_issuer: %[1]s
oidc_subject: sub-alice
---
kind: User
name: bob
oidc_issuer: %[1]s
oidc_subject: sub-bob
---
kind: Target
name: web1
address: 127.0.0.1:1
---
kind: Account
name: root
target: web1
---
kind: Policy
name: p
type: target-access
subjects: {users: [alice, bob]}
targets: {names: [web1]}
target_users: [root]
actions: [exec]
`, op.Issuer())))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.inv.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	dir := testenv.ShortTempDir(t)
	return &ssoGateway{t: t, srv: srv, op: op, clientDir: dir, key: testenv.NewClientKey(t, dir)}
}

// sshClient is an OpenSSH client in flight whose SSH_ASKPASS writes each
// prompt to a file and answers (an empty line) only once the go-ahead
// file exists, as a person who presses Enter after signing in.
type sshClient struct {
	cmd            *exec.Cmd
	prompts, goTo  string
	stderr         strings.Builder
	done           chan struct{} // closed when ssh ended, with err set
	err            error
	cancelDeadline context.CancelFunc
}

func (g *ssoGateway) ssh(login string) *sshClient {
	t := g.t
	t.Helper()
	dir := t.TempDir()
	c := &sshClient{prompts: filepath.Join(dir, "prompts"), goTo: filepath.Join(dir, "go"), done: make(chan struct{})}
	askpass := filepath.Join(dir, "askpass")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$1\" >> '%s'\ni=0; while [ ! -e '%s' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\necho\n", c.prompts, c.goTo)
	if err := os.WriteFile(askpass, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	args := slices.Clone(testenv.SSHArgs(g.clientDir, g.key, g.srv.SSHAddr().String(), g.srv.HostKey()))
	for i := range args {
		if args[i] == "BatchMode=yes" {
			args[i] = "BatchMode=no"
		}
	}
	args = append(args, "-o", "KbdInteractiveAuthentication=yes", "-o", "PasswordAuthentication=no",
		"-l", login, "127.0.0.1", "true")
	// A liveness guard only: a client still asking after this is stuck.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	c.cancelDeadline = cancel
	c.cmd = exec.CommandContext(ctx, "ssh", args...)
	c.cmd.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
	c.cmd.Stderr = &c.stderr
	// askpass may outlive a killed ssh holding stderr open.
	c.cmd.WaitDelay = time.Second
	if err := c.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = os.WriteFile(c.goTo, nil, 0o600)
		cancel()
		<-c.done
	})
	return c
}

var signInURL = regexp.MustCompile(`https://\S+/ui/oidc/ssh/[A-Za-z0-9_-]+`)

// url waits for the first prompt and returns the sign-in URL in it.
func (c *sshClient) url(t *testing.T) string {
	t.Helper()
	for {
		if b, err := os.ReadFile(c.prompts); err == nil {
			if u := signInURL.FindString(string(b)); u != "" {
				return u
			}
		}
		select {
		case <-c.done:
			t.Fatalf("ssh ended before any prompt: %v %s", c.err, c.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// finish lets askpass answer and returns how ssh ended.
func (c *sshClient) finish() error {
	_ = os.WriteFile(c.goTo, nil, 0o600)
	defer c.cancelDeadline()
	<-c.done
	return c.err
}

// browse signs sub in at the provider through signIn and returns where the
// console finally sent the browser.
func (g *ssoGateway) browse(signIn, sub string) string {
	t := g.t
	t.Helper()
	g.op.QueueUser(&mockoidc.MockUser{Subject: sub, Email: sub + "@example.test", PreferredUsername: sub})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // a test's own certificate
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := signIn
	for range 5 {
		resp, err := c.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || loc == "" {
			t.Fatalf("GET %s: %s", next, resp.Status)
		}
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		if u.Path == "/ui/" {
			return u.Fragment
		}
		next = resp.Request.URL.ResolveReference(u).String()
	}
	t.Fatalf("the browser sign-in did not end at the console")
	return ""
}

func (g *ssoGateway) logins(user string) []store.AuditEvent {
	g.t.Helper()
	evs, err := g.srv.store.ListAudit(context.Background(), store.AuditFilter{Type: "login.success"})
	if err != nil {
		g.t.Fatal(err)
	}
	var out []store.AuditEvent
	for _, ev := range evs {
		if ev.User == user {
			out = append(out, ev)
		}
	}
	return out
}

// TestSSHSingleSignOn signs in over SSH with the real OpenSSH client and a
// browser sign-in at the provider: the URL reaches the person, the login
// proceeds once the browser is done, and is audited as via sso.
func TestSSHSingleSignOn(t *testing.T) {
	g := startSSOGateway(t, 0)
	c := g.ssh("alice~web1")
	signIn := c.url(t)
	if frag := g.browse(signIn, "sub-alice"); frag != "sso_ssh=done" {
		t.Fatalf("browser ended at #%s", frag)
	}
	_ = c.finish() // the target is down: the session fails, the login does not
	evs := g.logins("alice")
	if len(evs) != 1 || evs[0].Detail["via"] != "sso" {
		t.Fatalf("alice's logins: %+v; ssh said %s", evs, c.stderr.String())
	}
	// The code was used once: the same URL starts nothing.
	if frag := g.browse(signIn, "sub-alice"); frag != "sso_error=expired" {
		t.Errorf("reused sign-in URL ended at #%s", frag)
	}
}

// TestSSHSingleSignOnWrongUser refuses a browser sign-in of another user's
// provider account: the SSH login does not proceed.
func TestSSHSingleSignOnWrongUser(t *testing.T) {
	g := startSSOGateway(t, 0)
	c := g.ssh("bob~web1")
	if frag := g.browse(c.url(t), "sub-alice"); frag != "sso_error=wrong_user" {
		t.Fatalf("browser ended at #%s", frag)
	}
	if err := c.finish(); err == nil {
		t.Fatalf("ssh as bob succeeded after alice signed in")
	}
	if evs := g.logins("bob"); len(evs) != 0 {
		t.Fatalf("bob logged in: %+v", evs)
	}
}

// TestSSHSingleSignOnCache lets the same user from the same address in
// again without the browser while sso_cache lasts.
func TestSSHSingleSignOnCache(t *testing.T) {
	g := startSSOGateway(t, time.Hour)
	c := g.ssh("alice~web1")
	if frag := g.browse(c.url(t), "sub-alice"); frag != "sso_ssh=done" {
		t.Fatalf("browser ended at #%s", frag)
	}
	_ = c.finish()
	again := g.ssh("alice~web1")
	// No go-ahead: were the browser asked again, askpass would wait.
	<-again.done
	if len(g.logins("alice")) != 2 {
		t.Fatalf("second login: %v %s", again.err, again.stderr.String())
	}
	if _, err := os.Stat(again.prompts); err == nil {
		t.Errorf("the cached login was asked: prompts file exists")
	}
	evs := g.logins("alice")
	if len(evs) != 2 || !strings.Contains(evs[1].Message, "cached") {
		t.Fatalf("alice's logins: %+v", evs)
	}
}
