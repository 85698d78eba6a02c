package sshgate_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/provision"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/sshgate"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

// gateway is an in-process gateway on loopback with a real store, vault and
// SSH front, for driving with the real OpenSSH tools.
type gateway struct {
	t       *testing.T
	dir     string
	addr    string
	hostKey ssh.PublicKey
	store   store.Store
	inv     *inventory.Inventory
	srv     *sshgate.Server
	ca      *vault.CA
	rec     *recording.Manager
	mfa     *mfa.Service
}

type gatewayOption func(*sshgate.Config)

func startGateway(t *testing.T, opts ...gatewayOption) *gateway {
	t.Helper()
	dir := testenv.ShortTempDir(t)
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := v.LoadOrCreateCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	_, hk, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, _ := ssh.NewSignerFromKey(hk)
	rm, err := recording.NewManager(filepath.Join(dir, "rec"), st, log)
	if err != nil {
		t.Fatal(err)
	}
	auditLog := audit.New(st, log)
	mfaSvc, err := mfa.New(mfa.Config{Store: st, Vault: v, Audit: auditLog, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	prov, err := provision.New(provision.Config{Inventory: inv, Vault: v, HostKeys: st, Audit: auditLog, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg := sshgate.Config{
		HostKey: hostSigner, Snapshot: inv.Snapshot, Vault: v, CA: ca, HostKeys: st,
		Audit: auditLog, Log: log, DialTimeout: 5 * time.Second,
		Recordings: rm, Commands: st, MFA: mfaSvc, Provisioner: prov,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := sshgate.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inv.Subscribe(srv.Recheck)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	recDone := make(chan struct{})
	go func() {
		defer close(recDone)
		rm.Run(sctx)
	}()
	go func() {
		defer close(done)
		_ = srv.Serve(sctx, ln)
	}()
	t.Cleanup(func() {
		shut, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		_ = srv.Shutdown(shut)
		cancel()
		<-done
		<-recDone
		st.Close()
	})
	return &gateway{t: t, dir: dir, addr: ln.Addr().String(), hostKey: hostSigner.PublicKey(), store: st, inv: inv, srv: srv, ca: ca, rec: rm, mfa: mfaSvc}
}

// apply applies a YAML stream, failing the test on error.
func (g *gateway) apply(yaml string) {
	g.t.Helper()
	objs, err := resource.DecodeYAML([]byte(yaml))
	if err != nil {
		g.t.Fatalf("decode: %v", err)
	}
	if _, err := g.inv.Apply(context.Background(), objs); err != nil {
		g.t.Fatalf("apply: %v", err)
	}
}

// accountPub returns an account's public key as stored.
func (g *gateway) accountPub(target, name string) ssh.PublicKey {
	g.t.Helper()
	a := g.inv.Snapshot().Account(target, name)
	if a == nil {
		g.t.Fatalf("no account %s/%s", target, name)
	}
	pk, err := resource.ParseAuthorizedKey(a.PublicKey)
	if err != nil {
		g.t.Fatal(err)
	}
	return pk
}

// events lists audit events of one type.
func (g *gateway) events(typ string) []store.AuditEvent {
	g.t.Helper()
	evs, err := g.store.ListAudit(context.Background(), store.AuditFilter{Type: typ})
	if err != nil {
		g.t.Fatal(err)
	}
	return evs
}

// waitEvent polls for an audit event of typ for which match returns true;
// session end events are written after the client has already exited.
func (g *gateway) waitEvent(typ string, match func(store.AuditEvent) bool) store.AuditEvent {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, ev := range g.events(typ) {
			if match == nil || match(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("no %s event matched; have %+v", typ, g.events(""))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// world is a target sshd with one user the gateway logs in as, and a
// gateway user with a client key, wired by a policy.
type world struct {
	gw        *gateway
	sshd      *testenv.SSHD
	unixUser  string // the target account name
	client    *testenv.ClientKey
	clientDir string
}

// newWorld starts sshd and a gateway and applies: user alice with a key,
// target web1 (pinned host key), an account for a fresh unix user, and a
// policy granting extraYAML-adjusted actions.
func newWorld(t *testing.T, actions string, opts ...gatewayOption) *world {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath)
	sshd := testenv.StartSSHD(t)
	gw := startGateway(t, opts...)
	u := sshd.AddUser(t)
	clientDir := testenv.ShortTempDir(t)
	client := testenv.NewClientKey(t, clientDir)
	gw.apply(fmt.Sprintf(`
kind: User
name: alice
email: alice@example.com
ssh_keys: [%q]
---
kind: Target
name: web1
address: %s
host_key: %q
labels: {env: test}
---
kind: Account
name: %s
target: web1
---
kind: Policy
name: alice-web1
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [%s]
actions: [%s]
source_cidrs: [127.0.0.0/8]
`, client.AuthorizedKey, sshd.Addr, authorizedLine(sshd.HostKey), u, u, actions))
	sshd.AuthorizeKey(t, u, gw.accountPub("web1", u))
	return &world{gw: gw, sshd: sshd, unixUser: u, client: client, clientDir: clientDir}
}

func authorizedLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// opts returns the client options for the gateway, at LogLevel INFO as a
// person has it: OpenSSH prints authentication banners only at INFO.
func (w *world) opts(sshStyle bool) []string {
	var o []string
	if sshStyle {
		o = testenv.SSHArgs(w.clientDir, w.client, w.gw.addr, w.gw.hostKey)
	} else {
		o = testenv.SSHOptions(w.clientDir, w.client, w.gw.addr, w.gw.hostKey)
	}
	for i := range o {
		if o[i] == "LogLevel=ERROR" {
			o[i] = "LogLevel=INFO"
		}
	}
	return o
}

// ssh runs the real ssh client through the gateway as login with extra
// flags and an optional command.
func (w *world) ssh(stdin, login string, flags []string, command ...string) (stdout, stderr string, code int) {
	w.gw.t.Helper()
	args := append(w.opts(true), "-l", login)
	args = append(args, flags...)
	args = append(args, "127.0.0.1")
	args = append(args, command...)
	return testenv.RunInput(w.gw.t, 30*time.Second, stdin, "ssh", args...)
}
