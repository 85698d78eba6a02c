package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/config"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
)

// The gateway signs the trail's head at shutdown, into the store and
// DATA/audit.checkpoints (0600), and the next run verifies against both.
func TestShutdownSignsAuditHead(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	objs, _ := resource.DecodeYAML([]byte("kind: User\nname: alice\n"))
	if _, err := srv.inv.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	_ = srv.audit.Write(ctx, auditEvent("login.success"))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(cfg.DataDir, "audit.checkpoints")
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("no checkpoint file after shutdown: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", file, fi.Mode().Perm())
	}

	srv, err = New(context.Background(), cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	v, err := srv.checkpoints.Verify(context.Background(), nil)
	if err != nil || !v.OK || v.Head == nil || v.Head.EventID != v.LastID || v.Checkpoints != 2 {
		t.Fatalf("Verify after a restart = %+v (%+v), %v; want OK, held to the shutdown checkpoint in the store and the file", v, v.FirstBad, err)
	}
	if _, err := audit.ParsePublicKey(srv.checkpoints.PublicKey()); err != nil {
		t.Error(err)
	}
}

func auditEvent(typ string) store.AuditEvent {
	return store.AuditEvent{Type: typ, Outcome: audit.Success, User: "alice"}
}

// audit_retention reaches the checkpointer: old events go with a signed
// cut, and the trail still verifies.
func TestAuditRetentionConfigured(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.AuditRetention = config.Duration(time.Hour)
	cfg.RetentionForce = true // an hour, to see it cut; under the 12-month floor
	srv, err := New(ctx, cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	old := time.Now().Add(-48 * time.Hour)
	for range 5 {
		ev := auditEvent("login.success")
		ev.Time = old
		if err := srv.audit.Write(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.audit.Write(ctx, auditEvent("login.success")); err != nil {
		t.Fatal(err)
	}
	if err := srv.checkpoints.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := srv.checkpoints.Verify(ctx, nil)
	if err != nil || !v.OK || !v.StartsAfterRetention || v.Retention == nil {
		t.Fatalf("Verify after retention = %+v (%+v), %v", v, v.FirstBad, err)
	}
	evs, err := srv.store.ListAudit(ctx, store.AuditFilter{Type: audit.AuditRetention})
	if err != nil || len(evs) != 1 {
		t.Fatalf("audit.retention events: %+v, %v", evs, err)
	}
}
