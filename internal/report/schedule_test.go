package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/report"
	"github.com/portcullis/portcullis/internal/store"
)

// TestSchedules: bad schedules are refused and store nothing; a due
// schedule writes a verifiable export to its directory and posts one to its
// webhook, once per interval.
func TestSchedules(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	var mu sync.Mutex
	clock := now
	tick := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	w.gen.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	var posted [][]byte
	hook := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = append(posted, b)
		mu.Unlock()
	}))
	defer hook.Close()
	al := audit.New(w.st, slog.New(slog.DiscardHandler))
	s := &report.Scheduler{Generator: w.gen, Store: w.st, Audit: al.Write, Client: hook.Client(),
		Log: slog.New(slog.DiscardHandler), Now: w.gen.Now,
		Reviews: &report.Reviews{Source: w.src, Inventory: w.inv, Audit: al.Write, Now: w.gen.Now}}
	dir := t.TempDir()
	for _, bad := range []store.ReportSchedule{
		{Kind: "nope", Every: 24 * time.Hour, Dest: dir},
		{Kind: "access-log", Every: time.Minute, Dest: dir},
		{Kind: "access-log", Every: 24 * time.Hour, Dest: "relative/dir"},
		{Kind: "access-log", Every: 24 * time.Hour, Dest: filepath.Join(dir, "missing")},
		{Kind: "access-log", Every: 24 * time.Hour, Dest: "http://example.test/hook"},
		{Kind: "access-log", Every: 24 * time.Hour, Dest: dir, Formats: []string{"xls"}},
		{Kind: report.ReviewSchedule, Every: time.Hour},
	} {
		if _, err := s.Add(ctx, bad, ""); !errors.Is(err, report.ErrBadRequest) && !errors.Is(err, report.ErrUnknownKind) {
			t.Errorf("Add(%+v) = %v", bad, err)
		}
	}
	if scs, _ := w.st.ListReportSchedules(ctx); len(scs) != 0 {
		t.Fatalf("refused schedules were stored: %+v", scs)
	}
	if _, err := s.Add(ctx, store.ReportSchedule{Kind: "failed-logins", Every: 24 * time.Hour, Dest: dir, CreatedBy: "frank"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, store.ReportSchedule{Kind: "access-log", Every: 24 * time.Hour, Dest: hook.URL + "/in",
		Formats: []string{"json"}, CreatedBy: "frank"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, store.ReportSchedule{Kind: report.ReviewSchedule, Every: 24 * time.Hour, CreatedBy: "ivy"}, ""); err != nil {
		t.Fatal(err)
	}
	if n := s.RunDue(ctx); n != 0 {
		t.Fatalf("%d ran before they were due", n)
	}
	tick(24*time.Hour + time.Second)
	if n := s.RunDue(ctx); n != 3 {
		t.Fatalf("%d ran, want 3", n)
	}
	if cs, err := w.st.ListReviewCampaigns(ctx); err != nil || len(cs) != 1 || cs[0].StartedBy != "schedule 3" {
		t.Fatalf("scheduled review: %+v, %v", cs, err)
	}
	if n := s.RunDue(ctx); n != 0 {
		t.Fatalf("%d ran again at once", n)
	}
	manifests, _ := filepath.Glob(filepath.Join(dir, "*.manifest.json"))
	if len(manifests) != 1 {
		t.Fatalf("manifests in the directory: %v", manifests)
	}
	m, err := report.Verify(manifests[0], w.key.Public())
	if err != nil || m.Report != "failed-logins" || len(m.Files) != 3 || m.GeneratedBy != "schedule 1" {
		t.Fatalf("scheduled export: %+v, %v", m, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posted) != 1 {
		t.Fatalf("webhook got %d posts", len(posted))
	}
	var body report.WebhookBody
	if err := json.Unmarshal(posted[0], &body); err != nil {
		t.Fatal(err)
	}
	if err := body.Manifest.CheckSignature(w.key.Public()); err != nil {
		t.Fatal(err)
	}
	hd := t.TempDir()
	for _, f := range body.Files {
		if err := os.WriteFile(filepath.Join(hd, f.Name), f.Data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The period is the one since the schedule was made.
	if err := body.Manifest.VerifyFiles(hd); err != nil || body.Manifest.Filters.Since != now.Format(time.RFC3339) ||
		!bytes.Contains(body.Files[0].Data, []byte(`"report": "access-log"`)) {
		t.Fatalf("webhook export: %v, %+v", err, body.Manifest)
	}
}
