package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/agent"
	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/cli"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// agentWorld is a gateway with its agent front, a target served by an
// agent running in this process, and alice's OpenSSH client.
type agentWorld struct {
	g          *haGateway
	dir        string
	args       []string // ssh
	opts       []string // scp, sftp
	rsyncShell string
	unixUser   string
	target     string
}

// newAgentWorld starts a gateway, registers an agent for target (forwarding
// to sshd when it is not nil, built-in otherwise) and grants alice every
// action on it as a fresh unix user, with sessions recorded.
func newAgentWorld(t *testing.T, target string, sshd *testenv.SSHD) *agentWorld {
	t.Helper()
	dir := testenv.ShortTempDir(t)
	cfg, err := config.Parse([]string{"--data-dir", filepath.Join(dir, "d"), "--ssh-addr", "127.0.0.1:0", "--api-addr", "",
		"--pg-addr", "", "--agent-addr", "127.0.0.1:0", "--shutdown-timeout", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	g := &haGateway{srv: srv, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- srv.Run(ctx) }()
	t.Cleanup(g.stop)

	id, value, err := apikey.New()
	if err != nil {
		t.Fatal(err)
	}
	_, secret, _ := apikey.Parse(value)
	if err := srv.store.CreateAPIKey(context.Background(), store.APIKey{ID: id, Name: "agents", Kind: store.APIKeyRegistration,
		SecretHash: apikey.Hash(id, secret), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var unixUser string
	acfg := agent.Config{Gateway: srv.AgentAddr().String(), StateDir: filepath.Join(dir, "agent"), Name: target,
		RegistrationKey: value, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if testing.Verbose() {
		acfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if sshd != nil {
		acfg.SSHD = sshd.Addr
		unixUser = sshd.AddUser(t)
	} else {
		b, err := agent.NewBuiltin(agent.BuiltinConfig{Log: acfg.Log})
		if err != nil {
			t.Fatal(err)
		}
		acfg.Builtin = b
		// A real account on this host, as the built-in server serves
		// existing users only.
		unixUser = testenv.StartSSHD(t).AddUser(t)
	}
	a, err := agent.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(context.Background())
	adone := make(chan struct{})
	go func() {
		defer close(adone)
		_ = a.Run(actx)
	}()
	t.Cleanup(func() { acancel(); <-adone })

	key := testenv.NewClientKey(t, dir)
	g.apply(t, fmt.Sprintf(`
kind: User
name: alice
ssh_keys: [%q]
---
kind: Policy
name: alice-agent
type: target-access
subjects: {users: [alice]}
targets: {names: [%s]}
target_users: [%s]
actions: [shell, exec, file-transfer, tunnel]
commands: {deny: ['^shutdown']}
paths: {read: ['/**'], write: ['~/**']}
---
kind: Policy
name: rec
type: session-recording
subjects: {users: [alice]}
targets: {names: [%s]}
`, key.AuthorizedKey, target, unixUser, target))
	if sshd != nil {
		g.apply(t, fmt.Sprintf("kind: Account\nname: %s\ntarget: %s\n", unixUser, target))
		o, err := srv.inv.Get(context.Background(), resource.KindAccount, target+"/"+unixUser)
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := resource.ParseAuthorizedKey(o.(*resource.Account).PublicKey)
		sshd.AuthorizeKey(t, unixUser, pub)
	}
	waitFor(t, "the agent to connect", func() bool { return srv.agents.Connected(target) })
	addr := srv.SSHAddr().String()
	return &agentWorld{g: g, dir: dir, unixUser: unixUser, target: target,
		args: testenv.SSHArgs(dir, key, addr, srv.HostKey()), opts: testenv.SSHOptions(dir, key, addr, srv.HostKey()),
		rsyncShell: testenv.RsyncShell(dir, key, addr, srv.HostKey())}
}

func (w *agentWorld) ssh(t *testing.T, stdin string, flags []string, command ...string) (string, string, int) {
	t.Helper()
	args := append(append([]string{}, w.args...), "-l", "alice~"+w.target)
	args = append(args, flags...)
	args = append(append(args, "127.0.0.1"), command...)
	return testenv.RunInput(t, 30*time.Second, stdin, "ssh", args...)
}

// TestAgentTargets drives both agent modes with the OpenSSH tools: exec
// with its exit status, a pty shell, a denied command, scp in both modes,
// sftp, rsync and a -W tunnel, each through the same policy, recording
// and audit as an OpenSSH target.
func TestAgentTargets(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", "scp", "sftp", testenv.SSHDPath)
	for _, mode := range []string{"forward", "builtin"} {
		t.Run(mode, func(t *testing.T) {
			var sshd *testenv.SSHD
			if mode == "forward" {
				sshd = testenv.StartSSHD(t)
			}
			w := newAgentWorld(t, "agent-"+mode, sshd)
			g := w.g.srv

			out, errOut, code := w.ssh(t, "", nil, "echo hello; id -un; echo oops >&2; exit 3")
			if code != 3 || out != "hello\n"+w.unixUser+"\n" || !strings.Contains(errOut, "oops") {
				t.Fatalf("exec: code %d out %q err %q", code, out, errOut)
			}
			out, _, code = w.ssh(t, "line1\nline2\n", nil, "wc -l")
			if code != 0 || strings.TrimSpace(out) != "2" {
				t.Fatalf("stdin through the agent: code %d out %q", code, out)
			}
			_, errOut, code = w.ssh(t, "", nil, "shutdown -h now")
			if code == 0 || !strings.Contains(errOut, "denied") {
				t.Fatalf("a denied command: code %d err %q", code, errOut)
			}
			out, errOut, code = w.ssh(t, "stty size; echo marker-$((6*7)); exit 7\n", []string{"-tt"})
			if code != 7 || !strings.Contains(out, "marker-42") {
				t.Fatalf("pty shell: code %d out %q err %q", code, out, errOut)
			}
			if sshd == nil {
				// Built in: the user's login shell, home and
				// supplementary groups, as sshd would set them.
				want, _, _ := testenv.Run(t, 10*time.Second, "id", "-G", w.unixUser)
				out, errOut, code = w.ssh(t, "", nil, "echo $HOME; id -G; echo $SHELL")
				u, _ := user.Lookup(w.unixUser)
				if code != 0 || u == nil || out != u.HomeDir+"\n"+want+"/bin/bash\n" {
					t.Fatalf("built-in session environment: code %d out %q (want home, %q, login shell) err %q", code, out, want, errOut)
				}
				out, _, _ = w.ssh(t, "echo $0; exit\n", []string{"-tt"})
				if !strings.Contains(out, "-bash") {
					t.Fatalf("built-in pty shell is not a login shell: %q", out)
				}
			}
			_, errOut, code = w.ssh(t, "", nil, "kill -TERM $$")
			if code != 255 {
				t.Fatalf("killed command: code %d err %q", code, errOut)
			}

			// Files: scp in both modes, then sftp, each way.
			local := filepath.Join(w.dir, "payload")
			payload := strings.Repeat("agent-file-", 50000)
			if err := os.WriteFile(local, []byte(payload), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, scpMode := range [][]string{{"-O"}, {"-s"}} {
				args := append(append(append([]string{}, w.opts...), scpMode...), local, "alice~"+w.target+"@127.0.0.1:up"+scpMode[0])
				if _, errOut, code := testenv.Run(t, 30*time.Second, "scp", args...); code != 0 {
					t.Fatalf("scp %s up: %d %s", scpMode[0], code, errOut)
				}
				back := filepath.Join(w.dir, "back"+scpMode[0])
				args = append(append(append([]string{}, w.opts...), scpMode...), "alice~"+w.target+"@127.0.0.1:up"+scpMode[0], back)
				if _, errOut, code := testenv.Run(t, 30*time.Second, "scp", args...); code != 0 {
					t.Fatalf("scp %s down: %d %s", scpMode[0], code, errOut)
				}
				if b, _ := os.ReadFile(back); string(b) != payload {
					t.Fatalf("scp %s: the file came back as %d bytes", scpMode[0], len(b))
				}
			}
			batch := "put " + local + " viasftp\nls -l viasftp\n"
			args := append(append([]string{}, w.opts...), "-b", "-", "alice~"+w.target+"@127.0.0.1")
			if out, errOut, code := testenv.RunInput(t, 30*time.Second, batch, "sftp", args...); code != 0 || !strings.Contains(out, "viasftp") {
				t.Fatalf("sftp: %d %q %q", code, out, errOut)
			}
			if _, ok := testenv.LookBinary("rsync"); ok {
				args := []string{"-e", w.rsyncShell, local, "alice~" + w.target + "@127.0.0.1:inbox/"}
				if _, errOut, code := testenv.Run(t, 30*time.Second, "rsync", args...); code != 0 {
					t.Fatalf("rsync: %d %s", code, errOut)
				}
			}
			// ssh -W to a service on the target host.
			echo := startEcho(t)
			out, errOut, code = w.ssh(t, "ping\n", []string{"-W", echo})
			if code != 0 || out != "ping\n" {
				t.Fatalf("ssh -W %s: code %d out %q err %q", echo, code, out, errOut)
			}

			// The same policy, recording and audit code as OpenSSH targets.
			evs, err := g.store.ListAudit(context.Background(), store.AuditFilter{Type: audit.SessionStart, User: "alice"})
			if err != nil || len(evs) == 0 {
				t.Fatalf("session.start events: %d %v", len(evs), err)
			}
			for _, ev := range evs {
				if ev.Target != w.target || ev.Account != w.unixUser || ev.Policy != "alice-agent" {
					t.Fatalf("session.start %+v", ev)
				}
			}
			recs, err := g.store.ListRecordings(context.Background(), store.RecordingFilter{})
			if err != nil || len(recs) == 0 {
				t.Fatalf("recordings: %d %v", len(recs), err)
			}
			denied, _ := g.store.ListAudit(context.Background(), store.AuditFilter{Type: audit.RequestDeny, User: "alice"})
			if len(denied) == 0 {
				t.Fatal("the denied command is not in the audit trail")
			}

			// get targets shows the agent's connection.
			var out2, errOut2 bytes.Buffer
			if code := cli.Run(context.Background(), []string{"--data-dir", w.g.cfg.DataDir, "get", "targets"}, strings.NewReader(""), &out2, &errOut2); code != 0 {
				t.Fatalf("get targets: %d %s", code, errOut2.String())
			}
			if want := "agent: connected to " + w.g.cfg.GatewayID; !strings.Contains(out2.String(), w.target) || !strings.Contains(out2.String(), "agent: connected to") || !strings.Contains(out2.String(), mode) {
				t.Fatalf("get targets does not show the agent connected (%s, %s mode):\n%s", want, mode, out2.String())
			}
		})
	}
}

// startEcho serves an echo on loopback and returns its address.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestRegistrationKeyLifecycle creates a scoped, limited registration key
// with the CLI, registers agents with it to its limit, and revokes it:
// revocation stops new registrations, not a connected agent.
func TestRegistrationKeyLifecycle(t *testing.T) {
	dir := testenv.ShortTempDir(t)
	cfg, err := config.Parse([]string{"--data-dir", filepath.Join(dir, "d"), "--ssh-addr", "127.0.0.1:0", "--api-addr", "",
		"--pg-addr", "", "--agent-addr", "127.0.0.1:0", "--shutdown-timeout", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	g := &haGateway{srv: srv, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- srv.Run(ctx) }()
	t.Cleanup(g.stop)
	run := func(args ...string) (string, int) {
		var out, errOut bytes.Buffer
		code := cli.Run(context.Background(), append([]string{"--data-dir", cfg.DataDir}, args...), strings.NewReader(""), &out, &errOut)
		return out.String() + errOut.String(), code
	}
	out, code := run("apikey", "create", "--name", "web-fleet", "--kind", "registration", "--environment", "prod",
		"--max-uses", "2", "--name-pattern", "web-*", "--json")
	if code != 0 {
		t.Fatalf("apikey create: %d %s", code, out)
	}
	var created struct {
		ID, Key, Environment, NamePattern string
		MaxUses                           int64 `json:"max_uses"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.MaxUses != 2 || created.Key == "" {
		t.Fatalf("apikey create answer %q: %v", out, err)
	}
	if out, code := run("apikey", "create", "--name", "x", "--kind", "access", "--owner", "alice", "--max-uses", "2"); code != 2 {
		t.Fatalf("limits on an access key: %d %s", code, out)
	}
	register := func(name string) (*agent.Agent, error) {
		b, err := agent.NewBuiltin(agent.BuiltinConfig{Log: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		a, err := agent.New(agent.Config{Gateway: srv.AgentAddr().String(), StateDir: filepath.Join(testenv.ShortTempDir(t), "a"),
			Name: name, RegistrationKey: created.Key, Builtin: b, Log: quietLog()})
		if err != nil {
			t.Fatal(err)
		}
		return a, a.Register(context.Background())
	}
	first, err := register("web-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := register("db-1"); err == nil || !strings.Contains(err.Error(), `"web-*"`) {
		t.Fatalf("a name outside the pattern: %v", err)
	}
	actx, acancel := context.WithCancel(context.Background())
	adone := make(chan struct{})
	go func() {
		defer close(adone)
		_ = first.Run(actx)
	}()
	t.Cleanup(func() { acancel(); <-adone })
	waitFor(t, "web-1 to connect", func() bool { return srv.agents.Connected("web-1") })

	if out, code := run("apikey", "revoke", created.ID); code != 0 {
		t.Fatalf("revoke: %d %s", code, out)
	}
	if _, err := register("web-2"); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("registration with a revoked key: %v", err)
	}
	// The connected agent stays: an admin disconnects or deletes it.
	time.Sleep(200 * time.Millisecond)
	if !srv.agents.Connected("web-1") {
		t.Fatal("revoking the registration key disconnected an agent")
	}
	tg := srv.inv.Snapshot().Engine.Target("web-1")
	if tg == nil || tg.Labels["environment"] != "prod" {
		t.Fatalf("web-1: %+v", tg)
	}
	// Deleting the target ends its agent's connection, and its identity
	// no longer logs in.
	if out, code := run("delete", "target", "web-1", "--yes"); code != 0 {
		t.Fatalf("delete target: %d %s", code, out)
	}
	waitFor(t, "the deleted target's agent to be cut off", func() bool { return !srv.agents.Connected("web-1") })
	time.Sleep(1500 * time.Millisecond)
	if srv.agents.Connected("web-1") {
		t.Fatal("the agent of a deleted target connected again")
	}
}

// TestLocalTarget: with --local-target the gateway serves its own machine
// as target local through a built-in agent in the same process: no sshd,
// no account key, a session recorded like any other.
func TestLocalTarget(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath)
	dir := testenv.ShortTempDir(t)
	cfg, err := config.Parse([]string{"--data-dir", filepath.Join(dir, "d"), "--ssh-addr", "127.0.0.1:0", "--api-addr", "",
		"--pg-addr", "", "--local-target", "--shutdown-timeout", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	g := &haGateway{srv: srv, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- srv.Run(ctx) }()
	t.Cleanup(g.stop)
	// The user whose sessions the built-in agent runs: a real account of
	// this machine (useradd through the sshd harness, which is not started
	// for the session).
	unixUser := testenv.StartSSHD(t).AddUser(t)
	key := testenv.NewClientKey(t, dir)
	g.apply(t, fmt.Sprintf(`
kind: User
name: alice
ssh_keys: [%q]
---
kind: Policy
name: alice-local
type: target-access
subjects: {users: [alice]}
targets: {names: [local]}
target_users: [%s]
actions: [shell, exec]
---
kind: Policy
name: rec
type: session-recording
subjects: {users: [alice]}
targets: {names: [local]}
`, key.AuthorizedKey, unixUser))
	waitFor(t, "the local agent to connect", func() bool { return srv.agents.Connected(LocalTargetName) })
	args := testenv.SSHArgs(dir, key, srv.SSHAddr().String(), srv.HostKey())
	out, errOut, code := testenv.Run(t, 30*time.Second, "ssh", append(args, "-l", "alice~local", "127.0.0.1", "id -un; echo recorded-line")...)
	if code != 0 || out != unixUser+"\nrecorded-line\n" {
		t.Fatalf("ssh alice~local: %d %q %q", code, out, errOut)
	}
	recs, err := srv.store.ListRecordings(context.Background(), store.RecordingFilter{})
	if err != nil || len(recs) != 1 || recs[0].Target != LocalTargetName {
		t.Fatalf("recordings: %+v %v", recs, err)
	}
}

// TestAutodiscoveryScript fetches the script with a registration key and
// runs it twice in a temporary root without systemd: it downloads the
// gateway's own binary, checks its SHA-256, and registers the host with a
// short-lived key minted for it, never the long-lived one.
func TestAutodiscoveryScript(t *testing.T) {
	testenv.Require(t, "bash", "curl", "sha256sum")
	dir := testenv.ShortTempDir(t)
	bin := filepath.Join(dir, "portcullis")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/portcullis").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v %s", err, out)
	}
	cfg, err := config.Parse([]string{"--data-dir", filepath.Join(dir, "d"), "--ssh-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0",
		"--pg-addr", "", "--agent-addr", "127.0.0.1:0", "--agent-binary", bin, "--shutdown-timeout", "2s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	g := &haGateway{srv: srv, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- srv.Run(ctx) }()
	t.Cleanup(g.stop)
	id, value, _ := apikey.New()
	_, secret, _ := apikey.Parse(value)
	if err := srv.store.CreateAPIKey(context.Background(), store.APIKey{ID: id, Name: "fleet", Kind: store.APIKeyRegistration,
		SecretHash: apikey.Hash(id, secret), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 30 * time.Second}
	req, _ := http.NewRequest("GET", "https://"+srv.APIAddr().String()+"/api/v1/autodiscovery-script?environment=prod", nil)
	req.Header.Set("X-API-KEY", value)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	script, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET autodiscovery-script: %d %s", resp.StatusCode, script)
	}
	if strings.Contains(string(script), secret) {
		t.Fatal("the script holds the long-lived registration key")
	}
	root := filepath.Join(dir, "root")
	for run := range 2 {
		cmd := exec.Command("bash", "-s", "--", "--no-systemd", "--root="+root)
		cmd.Stdin = bytes.NewReader(script)
		cmd.Env = append(os.Environ(), "PORTCULLIS_NAME=auto-1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run %d of the script: %v\n%s", run+1, err, out)
		}
		if strings.Contains(string(out), "pck_") {
			t.Fatalf("the script printed a key:\n%s", out)
		}
	}
	tg := srv.inv.Snapshot().Engine.Target("auto-1")
	if tg == nil || !tg.ThroughAgent() || tg.Labels["environment"] != "prod" {
		t.Fatalf("auto-1 as registered: %+v", tg)
	}
	if fi, err := os.Stat(filepath.Join(root, "var/lib/portcullis-agent/identity")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd")); !os.IsNotExist(err) {
		t.Fatalf("--no-systemd wrote under etc/systemd: %v", err)
	}
	// The minted key: short-lived, one environment, used once for two
	// runs (the second found the agent registered).
	keys, _ := srv.store.ListAPIKeys(context.Background())
	minted := 0
	for _, k := range keys {
		if k.ID == id {
			continue
		}
		minted++
		if k.Environment != "prod" || k.ExpiresAt.IsZero() || k.ExpiresAt.Sub(k.CreatedAt) > 2*time.Hour || k.Uses != 1 {
			t.Fatalf("minted key %+v", k)
		}
	}
	if minted != 1 {
		t.Fatalf("%d keys minted, want 1", minted)
	}
}

// TestAgentPeering: two gateways on one PostgreSQL; the agent is connected
// to gateway A, and alice's session arrives at gateway B, which forwards it
// to A (authenticated both ways with the host keys the gateways published).
func TestAgentPeering(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath)
	pg := testenv.StartPostgres(t)
	url := pg.NewDatabase(t)
	dir := testenv.ShortTempDir(t)
	masterKey := filepath.Join(dir, "master.key")
	start := func(name string) *haGateway {
		cfg, err := config.Parse([]string{"--data-dir", filepath.Join(dir, name), "--ssh-addr", "127.0.0.1:0", "--pg-addr", "",
			"--api-addr", "", "--agent-addr", "127.0.0.1:0", "--store", url, "--master-key-file", masterKey,
			"--gateway-id", name, "--shutdown-timeout", "2s"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		srv, err := New(ctx, cfg, quietLog())
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		g := &haGateway{srv: srv, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
		go func() { g.done <- srv.Run(ctx) }()
		t.Cleanup(g.stop)
		return g
	}
	a, b := start("gwa"), start("gwb")
	unixUser := testenv.StartSSHD(t).AddUser(t)
	id, value, _ := apikey.New()
	_, secret, _ := apikey.Parse(value)
	if err := a.srv.store.CreateAPIKey(context.Background(), store.APIKey{ID: id, Name: "agents", Kind: store.APIKeyRegistration,
		SecretHash: apikey.Hash(id, secret), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	bi, err := agent.NewBuiltin(agent.BuiltinConfig{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.New(agent.Config{Gateway: a.srv.AgentAddr().String(), StateDir: filepath.Join(dir, "agent"), Name: "far1",
		RegistrationKey: value, Builtin: bi, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ag.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithCancel(context.Background())
	adone := make(chan struct{})
	go func() {
		defer close(adone)
		_ = ag.Run(actx)
	}()
	t.Cleanup(func() { acancel(); <-adone })
	waitFor(t, "the agent to connect to A", func() bool { return a.srv.agents.Connected("far1") })
	key := testenv.NewClientKey(t, dir)
	a.apply(t, fmt.Sprintf(`
kind: User
name: alice
ssh_keys: [%q]
---
kind: Policy
name: alice-far
type: target-access
subjects: {users: [alice]}
targets: {names: [far1]}
target_users: [%s]
actions: [exec]
`, key.AuthorizedKey, unixUser))
	waitFor(t, "gateway B to see the policy", func() bool { return b.srv.inv.Snapshot().Exists("alice") })
	if b.srv.agents.Connected("far1") {
		t.Fatal("the agent is connected to B; the test needs it on A")
	}
	args := testenv.SSHArgs(dir, key, b.srv.SSHAddr().String(), b.srv.HostKey())
	out, errOut, code := testenv.Run(t, 30*time.Second, "ssh", append(args, "-l", "alice~far1", "127.0.0.1", "id -un; echo via-b")...)
	if code != 0 || out != unixUser+"\nvia-b\n" {
		t.Fatalf("session through B to A's agent: %d %q %q", code, out, errOut)
	}
	// Only a published peer's host key logs in as that peer: another key
	// claiming to be gateway B is refused, and so is an unknown gateway.
	_, impostor, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(impostor)
	for _, user := range []string{"peer:gwb", "peer:gwz"} {
		cc := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.FixedHostKey(a.srv.HostKey()), Timeout: 10 * time.Second}
		if c, err := ssh.Dial("tcp", a.srv.AgentAddr().String(), cc); err == nil {
			c.Close()
			t.Fatalf("%s logged in to A's agent front with a key of its own", user)
		}
	}
}
