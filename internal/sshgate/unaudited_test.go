package sshgate_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/sshgate"
	"github.com/portcullis/portcullis/internal/store"
)

// refusingAudit is an audit store that refuses every write, as a locked
// SQLite file does.
type refusingAudit struct{ store.Store }

func (refusingAudit) AppendAudit(context.Context, store.AuditEvent) (int64, error) {
	return 0, errors.New("database is locked (SQLITE_BUSY)")
}

// withUnwritableAudit gives the gateway an audit log whose store refuses
// writes and whose spool cannot be written either (it is closed).
func withUnwritableAudit(t *testing.T) gatewayOption {
	return func(c *sshgate.Config) {
		log := slog.New(slog.DiscardHandler)
		sp, err := audit.OpenSpool(filepath.Join(t.TempDir(), "audit.spool"), log)
		if err != nil {
			t.Fatal(err)
		}
		sp.Close()
		l := audit.New(refusingAudit{}, log)
		l.SetSpool(sp)
		c.Audit = l
	}
}

// TestLoginRefusedWhenNeitherStoreNorSpoolTakesIt: a login whose
// login.success can be neither stored nor spooled does not stay open. The
// old code ignored that error: a client opening no session (ssh -N, a
// connection kept for later) stayed logged in with no trace. One that
// opens a channel is told why.
func TestLoginRefusedWhenNeitherStoreNorSpoolTakesIt(t *testing.T) {
	w := newWorld(t, "exec, shell, tunnel", withUnwritableAudit(t))
	_, stderr, code := w.ssh("", "alice~web1", []string{"-N"})
	if code == 0 {
		t.Fatalf("ssh -N with no audit trail: exit 0, stderr %q", stderr)
	}
	_, stderr, code = w.ssh("", "alice~web1", nil, "echo hi")
	if code == 0 || !strings.Contains(stderr, "cannot write its audit trail") {
		t.Errorf("exec with no audit trail: exit %d, stderr %q", code, stderr)
	}
}
