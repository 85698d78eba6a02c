package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
)

// BenchmarkAppendAudit is the cost of one audit event in the SQLite store,
// the write every login, session start and session end makes.
func BenchmarkAppendAudit(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "p.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	ev := store.AuditEvent{Type: "session.start", Outcome: "success", User: "alice", Source: "127.0.0.1:50000",
		Target: "web1", Account: "root", SessionID: "0123456789abcdef", Policy: "admins", Message: "session started",
		Detail: map[string]any{"action": "shell", "command": ""}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.AppendAudit(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}
