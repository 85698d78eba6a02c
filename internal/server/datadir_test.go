package server

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
)

// A second `serve` on a data directory in use must leave at once, in one
// line naming the holder, before it touches anything: the first gateway's
// live recording stays active and its admin socket keeps answering.
func TestSecondServeChangesNothing(t *testing.T) {
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
	rec, err := srv.recordings.Start(ctx, recording.Meta{ID: "live1", User: "alice", Target: "web1", Account: "root", Action: "shell"})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close(context.Background())

	var stdout, stderr bytes.Buffer
	code := Main([]string{"--data-dir", cfg.DataDir, "--ssh-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0"}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("second serve exit code = %d, want 1", code)
	}
	want := "portcullis serve: data directory " + cfg.DataDir + " is in use by another gateway (pid " + strconv.Itoa(os.Getpid()) + ")\n"
	if stderr.String() != want {
		t.Errorf("second serve said %q, want %q", stderr.String(), want)
	}
	if stdout.Len() != 0 {
		t.Errorf("second serve printed %q", stdout.String())
	}
	got, err := srv.store.GetRecording(ctx, "live1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.RecordingActive {
		t.Errorf("the first gateway's live recording is %q after a second serve, want active", got.State)
	}
	evs, err := srv.store.ListAudit(ctx, store.AuditFilter{Type: "recording.interrupted"})
	if err != nil || len(evs) != 0 {
		t.Errorf("recording.interrupted events after a second serve: %v, %v", evs, err)
	}
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", cfg.AdminSocket)
	}}}
	resp, err := hc.Get("http://admin/api/v1/recordings")
	if err != nil {
		t.Fatalf("admin socket after a second serve: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("admin socket after a second serve: %s", resp.Status)
	}
}

// The gateway refuses a data directory or key file that others may write,
// and says which chmod fixes it; after the chmod it starts.
func TestRefusesWritableDataDirAndKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		path func(dataDir string) string
		mode os.FileMode
	}{
		{"world-writable data directory", func(d string) string { return d }, 0o777},
		{"group-writable data directory", func(d string) string { return d }, 0o770},
		{"group-writable master key", func(d string) string { return filepath.Join(d, "master.key") }, 0o620},
		{"world-writable host key", func(d string) string { return filepath.Join(d, "ssh_host_ed25519_key") }, 0o602},
		{"group-writable CA key", func(d string) string { return filepath.Join(d, "user_ca.sealed") }, 0o660},
		{"world-writable TLS key", func(d string) string { return filepath.Join(d, "api_tls.key") }, 0o666},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			ctx := context.Background()
			// A first start creates every file, privately.
			srv, err := New(ctx, cfg, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			srv.close()
			p := tc.path(cfg.DataDir)
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err = New(ctx, cfg, quietLog())
			if err == nil {
				t.Fatalf("started with %s mode %04o", p, tc.mode)
			}
			fix := "chmod go-w " + p
			if !strings.Contains(err.Error(), fix) {
				t.Fatalf("error %q does not name the fix %q", err, fix)
			}
			if err := os.Chmod(p, tc.mode&^0o077); err != nil {
				t.Fatal(err)
			}
			srv, err = New(ctx, cfg, quietLog())
			if err != nil {
				t.Fatalf("after %s: %v", fix, err)
			}
			srv.close()
		})
	}
}
