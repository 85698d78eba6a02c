package report_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/report"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
)

// BenchmarkAccessLog measures an access-log export (CSV, JSON and PDF) of
// a year with 5,000 sessions, each with its start, end, a data event and
// two commands, on SQLite. Reported, never asserted.
func BenchmarkAccessLog(b *testing.B) {
	const sessions = 5000
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "p.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	t0 := now.Add(-365 * day)
	for i := range sessions {
		at := t0.Add(time.Duration(i) * time.Hour)
		id := fmt.Sprintf("s%05d", i)
		for _, ev := range []store.AuditEvent{
			{Time: at, Type: audit.SessionStart, Outcome: audit.Success, User: "erin", Source: "192.0.2.1:1", Target: "web1", Account: "svc", SessionID: id, Detail: map[string]any{"action": "shell"}},
			{Time: at.Add(time.Second), Type: "session.data", Outcome: audit.Info, User: "erin", SessionID: id},
			{Time: at.Add(time.Minute), Type: audit.SessionEnd, Outcome: audit.Success, User: "erin", Target: "web1", Account: "svc", SessionID: id},
		} {
			if _, err := st.AppendAudit(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
		for range 2 {
			if _, err := st.AppendCommand(ctx, store.Command{Time: at, User: "erin", Target: "web1", SessionID: id, Command: "ls", Certain: true}); err != nil {
				b.Fatal(err)
			}
		}
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := audit.NewKey(priv)
	src := &report.Source{Store: st, Resources: func(context.Context) ([]resource.Object, error) { return nil, nil }}
	gen := &report.Generator{Source: src, Signer: key, Version: "bench", Audit: audit.New(st, slog.New(slog.DiscardHandler)).Write,
		Now: func() time.Time { return now }}
	b.ResetTimer()
	var size int
	for b.Loop() {
		ex, err := gen.Generate(ctx, report.Request{Kind: "access-log", Params: report.Params{Since: t0, Until: now}})
		if err != nil {
			b.Fatal(err)
		}
		if ex.Manifest.Rows != sessions {
			b.Fatalf("%d rows", ex.Manifest.Rows)
		}
		size = 0
		for _, f := range ex.Files {
			size += len(f.Data)
		}
	}
	b.ReportMetric(float64(size)/1e6, "MB/export")
}
