package pgproxy

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store/sqlite"
)

// BenchmarkStatementAudit measures the audit writer's cost per statement
// (one op), as pgbench -S sends them: batches of 100 one-row SELECTs of a
// session written to a SQLite store, with an info-level logger.
//
//	go test -run '^$' -bench StatementAudit -benchmem ./internal/pgproxy/
func BenchmarkStatementAudit(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := &Server{cfg: Config{Audit: audit.New(st, log), Log: log}}
	sess := &session{srv: srv, id: "pg-bench", database: "app", targetUser: "app", src: "127.0.0.1:5000"}
	sess.ident.Name = "alice"
	sess.login.Target = "db1"
	const batch = 100
	items := make([]auditItem, batch)
	rows := int64(1)
	for i := range items {
		items[i] = auditItem{stmt: stmtRecord{SQL: "SELECT abalance FROM pgbench_accounts WHERE aid = 123456;",
			Kind: "query", Outcome: audit.Success, Tag: "SELECT 1", Rows: &rows}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		srv.writeSession(sess, items)
	}
}
