package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
)

func testConfig(t *testing.T) config.Config {
	t.Helper()
	dir := testenv.ShortTempDir(t)
	cfg, err := config.Parse([]string{"--data-dir", filepath.Join(dir, "d"), "--ssh-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0", "--shutdown-timeout", "1s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestStartCreatesPrivateFilesAndRefusesSecondInstance(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for _, f := range []string{cfg.MasterKeyFile, cfg.HostKeyFile, cfg.CAKeyFile, cfg.AdminSocket, filepath.Join(cfg.DataDir, "portcullis.db")} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(cfg.DataDir); fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
	// A second gateway on the same data directory is refused, naming why.
	cfg2 := cfg
	cfg2.SSHAddr = "127.0.0.1:0"
	if _, err := New(ctx, cfg2, quietLog()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second instance: %v", err)
	}
}

func TestRestartKeepsKeysAndState(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	hk := srv.HostKey()
	objs, _ := resource.DecodeYAML([]byte("kind: User\nname: alice\n"))
	if _, err := srv.inv.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	cancel()
	<-done

	srv2, err := New(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.close()
	if string(srv2.HostKey().Marshal()) != string(hk.Marshal()) {
		t.Fatal("host key changed across restarts")
	}
	if _, err := srv2.inv.Get(context.Background(), resource.KindUser, "alice"); err != nil {
		t.Fatalf("user lost across restart: %v", err)
	}
}

func TestBadMasterKeyFailsClosed(t *testing.T) {
	cfg := testConfig(t)
	os.MkdirAll(cfg.DataDir, 0o700)
	os.WriteFile(cfg.MasterKeyFile, []byte("not hex\n"), 0o600)
	_, err := New(context.Background(), cfg, quietLog())
	if err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("err = %v, want a master key error", err)
	}
}

// TestGracefulShutdown: on shutdown a live session is told why and ends,
// and its end event is stored before the store closes.
func TestGracefulShutdown(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "ssh", testenv.SSHDPath)
	sshd := testenv.StartSSHD(t)
	unixUser := sshd.AddUser(t)
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	clientDir := testenv.ShortTempDir(t)
	key := testenv.NewClientKey(t, clientDir)
	objs, err := resource.DecodeYAML([]byte(fmt.Sprintf(`
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
actions: [exec]
`, key.AuthorizedKey, sshd.Addr, unixUser, unixUser)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.inv.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	acct := srv.inv.Snapshot().Account("web1", unixUser)
	pub, _ := resource.ParseAuthorizedKey(acct.PublicKey)
	sshd.AuthorizeKey(t, unixUser, pub)

	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	args := append(testenv.SSHArgs(clientDir, key, srv.SSHAddr().String(), srv.HostKey()),
		"-l", "alice~web1", "127.0.0.1", "echo started; sleep 60")
	cmd := exec.Command("ssh", args...)
	out, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "started\n" {
		t.Fatalf("session did not start: %q %s", line, stderr.String())
	}
	t0 := time.Now()
	cancel() // what SIGTERM does in Main
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after shutdown")
	}
	t.Logf("Run returned %v after shutdown began", time.Since(t0))
	_ = cmd.Wait()
	if !strings.Contains(stderr.String(), "the gateway is shutting down") {
		t.Fatalf("client saw %q", stderr.String())
	}
	// Told at the start of the grace period how long it had, not only
	// when it was closed.
	if want := fmt.Sprintf("this session will be closed in %v", time.Duration(cfg.ShutdownTimeout)); !strings.Contains(stderr.String(), want) {
		t.Errorf("client saw %q, want %q", stderr.String(), want)
	}
	dbPath, _ := cfg.SQLitePath()
	st, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: "session.end"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("session.end events after shutdown: %d, %v", len(evs), err)
	}
	endID := evs[0].SessionID
	evs, err = st.ListAudit(context.Background(), store.AuditFilter{Type: "session.shutdown"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("session.shutdown events: %d, %v", len(evs), err)
	}
	if evs[0].SessionID != endID {
		t.Errorf("session.shutdown session id %q, session.end's %q: want the same", evs[0].SessionID, endID)
	}
}
