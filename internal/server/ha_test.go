package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/testenv"
)

// haGateway is one of several gateways sharing a PostgreSQL store, run in
// this process.
type haGateway struct {
	srv    *Server
	cfg    config.Config
	cancel context.CancelFunc
	done   chan error
}

func startHAGateway(t *testing.T, dir, name, storeURL, masterKey string, extra ...string) *haGateway {
	t.Helper()
	cfg, err := config.Parse(append([]string{"--data-dir", filepath.Join(dir, name), "--ssh-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0",
		"--api-addr", "127.0.0.1:0", "--store", storeURL, "--master-key-file", masterKey,
		"--gateway-id", name, "--shutdown-timeout", "1s"}, extra...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		cancel()
		t.Fatalf("start gateway %s: %v", name, err)
	}
	g := &haGateway{srv: srv, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- srv.Run(ctx) }()
	t.Cleanup(g.stop)
	return g
}

func (g *haGateway) stop() {
	if g.cancel != nil {
		g.cancel()
		<-g.done
		g.cancel = nil
	}
}

func (g *haGateway) apply(t *testing.T, yaml string) {
	t.Helper()
	objs, err := resource.DecodeYAML([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.srv.inv.Apply(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or 20 s pass, and returns how long it
// took (reported, never asserted: timing is not a test's business here).
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// TestTwoGatewaysOnePostgres runs two gateways on one PostgreSQL: what is
// applied through one is enforced by the other, a revocation through one
// ends a live session on the other, the target key made by one decrypts
// on the other, and both see one audit trail.
func TestTwoGatewaysOnePostgres(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath)
	pg := testenv.StartPostgres(t)
	url := pg.NewDatabase(t)
	sshd := testenv.StartSSHD(t)
	unixUser := sshd.AddUser(t)
	dir := testenv.ShortTempDir(t)
	masterKey := filepath.Join(dir, "master.key")
	a := startHAGateway(t, dir, "gwa", url, masterKey)
	b := startHAGateway(t, dir, "gwb", url, masterKey)

	key := testenv.NewClientKey(t, dir)
	a.apply(t, fmt.Sprintf(`
kind: User
name: alice
ssh_keys: [%q]
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
name: p
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [%s]
actions: [exec, shell]
`, key.AuthorizedKey, sshd.Addr, unixUser, unixUser))
	d := waitFor(t, "gateway B to see alice", func() bool { return b.srv.inv.Snapshot().Exists("alice") })
	t.Logf("an apply through gateway A was enforced by gateway B after %s (LISTEN/NOTIFY)", d)

	// The account key was generated and sealed by A; B opens it.
	o, err := a.srv.inv.Get(context.Background(), resource.KindAccount, "web1/"+unixUser)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := resource.ParseAuthorizedKey(o.(*resource.Account).PublicKey)
	if err != nil {
		t.Fatalf("account public key: %v", err)
	}
	sshd.AuthorizeKey(t, unixUser, pub)

	args := testenv.SSHArgs(dir, key, b.srv.SSHAddr().String(), b.srv.HostKey())
	out, err := exec.Command("ssh", append(args, "-l", "alice~web1", "127.0.0.1", "echo via-b")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "via-b") {
		t.Fatalf("exec through gateway B with the key A made: %v %s", err, out)
	}

	// A live session on B; the policy is deleted through A; B ends it.
	client := exec.Command("ssh", append(args, "-l", "alice~web1", "127.0.0.1", "echo started; sleep 60")...)
	stdout, _ := client.StdoutPipe()
	client.Stderr = client.Stdout
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Process.Kill(); _ = client.Wait() }()
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if l := <-lines; l != "started" {
		t.Fatalf("session: %q", l)
	}
	start := time.Now()
	if err := a.srv.inv.Delete(context.Background(), resource.KindPolicy, "p"); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- client.Wait() }()
	select {
	case <-exited:
		t.Logf("a revocation through gateway A ended the session on gateway B after %s", time.Since(start))
	case <-time.After(20 * time.Second):
		t.Fatal("the session on gateway B outlived the revocation through gateway A")
	}

	// One audit trail: B's session events are listed through A.
	evs, err := a.srv.store.ListAudit(context.Background(), store.AuditFilter{Type: "session.", User: "alice"})
	if err != nil || len(evs) == 0 {
		t.Fatalf("audit through A: %d events, %v", len(evs), err)
	}
}

// TestPostgresRestartMidSession stops PostgreSQL under a running session:
// the session goes on, its audit events wait in the spool, new logins are
// refused with a message; when PostgreSQL is back, new logins work without
// a restart of the gateway and the spooled events are in the trail, in
// order.
func TestPostgresRestartMidSession(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath)
	pg := testenv.StartPostgres(t)
	url := pg.NewDatabase(t)
	sshd := testenv.StartSSHD(t)
	unixUser := sshd.AddUser(t)
	dir := testenv.ShortTempDir(t)
	g := startHAGateway(t, dir, "gw", url, filepath.Join(dir, "master.key"))
	key := testenv.NewClientKey(t, dir)
	g.apply(t, fmt.Sprintf(`
kind: User
name: alice
ssh_keys: [%q]
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
name: p
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [%s]
actions: [exec, shell]
`, key.AuthorizedKey, sshd.Addr, unixUser, unixUser))
	o, err := g.srv.inv.Get(context.Background(), resource.KindAccount, "web1/"+unixUser)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := resource.ParseAuthorizedKey(o.(*resource.Account).PublicKey)
	sshd.AuthorizeKey(t, unixUser, pub)
	args := testenv.SSHArgs(dir, key, g.srv.SSHAddr().String(), g.srv.HostKey())

	// A session that prints a line for each line it reads.
	client := exec.Command("ssh", append(args, "-l", "alice~web1", "127.0.0.1", "while read l; do echo got-$l; done")...)
	stdin, _ := client.StdinPipe()
	stdout, _ := client.StdoutPipe()
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Process.Kill(); _ = client.Wait() }()
	sc := bufio.NewScanner(stdout)
	roundTrip := func(word string) {
		t.Helper()
		fmt.Fprintln(stdin, word)
		if !sc.Scan() || sc.Text() != "got-"+word {
			t.Fatalf("session answer to %s: %q %v", word, sc.Text(), sc.Err())
		}
	}
	roundTrip("one")

	pg.Stop(t)
	roundTrip("two") // the session goes on without its database
	waitFor(t, "the gateway to notice the database is down", func() bool { return g.srv.health.Available() != nil })
	// LogLevel INFO (first value wins) shows the server's banner line.
	loud := append([]string{"-o", "LogLevel=INFO"}, args...)
	out, err := exec.Command("ssh", append(loud, "-l", "alice~web1", "127.0.0.1", "true")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot reach its database") {
		t.Fatalf("login while the database is down: %v %s", err, out)
	}
	// The HTTPS API fails closed too, and says why; /healthz says so.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // self-signed test certificate
	for path, want := range map[string]int{"/api/v1/me": 503, "/healthz": 503} {
		resp, err := hc.Get("https://" + g.srv.APIAddr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s while the database is down: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// The refused login's audit event waits in the spool.
	waitFor(t, "an event in the spool", func() bool { return g.srv.spool.Pending() > 0 })
	spooled := g.srv.spool.Pending()

	pg.Start(t)
	waitFor(t, "the gateway to notice the database is back", func() bool { return g.srv.health.Available() == nil })
	out, err = exec.Command("ssh", append(args, "-l", "alice~web1", "127.0.0.1", "echo back")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "back") {
		t.Fatalf("login after the database came back: %v %s", err, out)
	}
	roundTrip("three")
	waitFor(t, "the spool to drain", func() bool { return g.srv.spool.Pending() == 0 })
	evs, err := g.srv.store.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var refused, lastTime int
	for i, ev := range evs {
		if ev.Type == "login.failure" && strings.Contains(ev.Message, "database") {
			refused++
		}
		if i > 0 && ev.Time.Before(evs[lastTime].Time) && ev.Type == "login.failure" {
			t.Errorf("spooled event %d (%s) appended out of order", ev.ID, ev.Type)
		}
		lastTime = i
	}
	if refused == 0 {
		t.Errorf("the refused login's audit event (one of %d spooled) is not in the trail", spooled)
	}
}
