package api_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the driver, to tamper with the store behind its back

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/store"
)

// appendEvents stores n events straight into the store.
func (e *recEnv) appendEvents(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour).UTC()
	for i := range n {
		_, err := e.st.AppendAudit(ctx, store.AuditEvent{
			Time: t0.Add(time.Duration(i) * time.Millisecond), Type: "login.success", Outcome: "success",
			User: fmt.Sprintf("user%d", i), Message: "logged in", Detail: map[string]any{"n": i},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// tamper runs one statement on the database file, as an intruder with
// access to it would.
func (e *recEnv) tamper(t *testing.T, stmt string) {
	t.Helper()
	db, err := sql.Open("sqlite", e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatal(err)
	}
}

func TestAPIAuditVerify(t *testing.T) {
	e := newRecEnv(t)
	e.appendEvents(t, 5)
	var v map[string]any
	e.getJSON(t, "/api/v1/audit/verify", &v)
	if v["ok"] != true || v["events"] != float64(5) || v["first_bad"] != nil {
		t.Errorf("intact chain: %v", v)
	}
	e.tamper(t, `UPDATE audit_events SET message = 'nothing happened' WHERE id = 3`)
	var bad api.Verification
	e.getJSON(t, "/api/v1/audit/verify", &bad) // 200: a broken chain is an answer
	if bad.OK || bad.FirstBad == nil || bad.FirstBad.ID != 3 || bad.FirstBad.Problem != "edited" || bad.FirstBad.Detail == "" {
		t.Errorf("edited event 3: %+v", bad)
	}
	e.tamper(t, `DELETE FROM audit_events WHERE id IN (2, 3)`)
	e.getJSON(t, "/api/v1/audit/verify", &bad)
	if bad.OK || bad.Events != 3 || bad.FirstBad == nil || bad.FirstBad.ID != 2 || bad.FirstBad.Problem != "removed" {
		t.Errorf("removed events 2 and 3: %+v %+v", bad, bad.FirstBad)
	}
	if status, _, body := e.do(t, "GET", "/api/v1/audit/verify?deep=1", ""); status != 400 {
		t.Errorf("unknown parameter: %d %s", status, body)
	}
}

func TestAPIAuditExport(t *testing.T) {
	e := newRecEnv(t)
	// More than one page of the export, so that paging is crossed.
	const n = 1050
	e.appendEvents(t, n)
	status, ct, body := e.do(t, "GET", "/api/v1/audit/export", "")
	if status != 200 || ct != "application/x-ndjson" {
		t.Fatalf("export: %d %s", status, ct)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not a JSON object: %v: %s", len(lines)+1, err, sc.Text())
		}
		lines = append(lines, ev)
	}
	if len(lines) != n {
		t.Fatalf("exported %d events, want %d", len(lines), n)
	}
	var listed []map[string]any
	e.getJSON(t, "/api/v1/audit?limit=1&after=0", &listed)
	for k := range listed[0] {
		if _, ok := lines[0][k]; !ok {
			t.Errorf("exported event lacks %q, which audit ls has", k)
		}
	}
	for i, ev := range lines {
		if ev["id"] != float64(i+1) {
			t.Fatalf("line %d has id %v: not in order", i+1, ev["id"])
		}
		if h, _ := ev["hash"].(string); len(h) != 64 {
			t.Fatalf("line %d: hash %v", i+1, ev["hash"])
		}
		if i > 0 && ev["prev_hash"] != lines[i-1]["hash"] {
			t.Fatalf("line %d: prev_hash does not link to line %d's hash", i+1, i)
		}
	}
	if lines[0]["prev_hash"] != "" {
		t.Errorf("first event's prev_hash %v, want empty", lines[0]["prev_hash"])
	}

	since := lines[1000]["time"].(string)
	_, _, body = e.do(t, "GET", "/api/v1/audit/export?since="+since, "")
	if got := strings.Count(body, "\n"); got != n-1000 {
		t.Errorf("since the 1001st event: %d lines, want %d", got, n-1000)
	}
	_, _, body = e.do(t, "GET", "/api/v1/audit/export?since=2200-01-01T00:00:00Z", "")
	if body != "" {
		t.Errorf("export of nothing: %q", body)
	}
	for _, q := range []string{"since=yesterday", "type=login.success", "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z"} {
		if status, ct, body := e.do(t, "GET", "/api/v1/audit/export?"+q, ""); status != 400 || ct != "application/json" {
			t.Errorf("%s: %d %s %s", q, status, ct, body)
		}
	}
}

// pageThenFail is a store whose audit listing serves one full page of
// made-up events and then fails, as a store that goes away mid-export.
type pageThenFail struct {
	store.Store
	calls int
}

func (p *pageThenFail) ListAudit(_ context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	p.calls++
	if p.calls > 1 {
		return nil, errors.New("database is locked: /var/lib/portcullis/portcullis.db")
	}
	evs := make([]store.AuditEvent, f.Limit)
	for i := range evs {
		evs[i] = store.AuditEvent{ID: int64(i + 1), Time: time.Now(), Type: "login.success"}
	}
	return evs, nil
}

// TestAPIAuditExportCutOff checks that an export failing midway is cut off
// (the client sees a broken transfer), not ended as if it were whole, and
// that the failure's detail stays in the log.
func TestAPIAuditExportCutOff(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	srv := httptest.NewServer(api.WithLocalAdmin(api.New(api.Config{Store: &pageThenFail{}, Log: log})))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/api/v1/audit/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read error %v, want unexpected EOF", err)
	}
	if n := strings.Count(string(b), "\n"); n != 1000 {
		t.Errorf("got %d lines before the cut, want the first page (1000)", n)
	}
	if strings.Contains(string(b), "database is locked") {
		t.Errorf("the failure's detail reached the client")
	}
	srv.Close() // waits for the handler, and its log line
	if !strings.Contains(logs.String(), "database is locked") {
		t.Errorf("the failure was not logged:\n%s", logs.String())
	}
}
