package report_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/directory"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/report"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/testenv"
	"github.com/portcullis/portcullis/internal/vault"
)

// now is the reports' clock: the seeded trail spans the 13 months before.
var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// world is a gateway's store seeded with resources, a year and more of
// audit trail, recordings, commands and reviews, and a real directory.
type world struct {
	st  *sqlite.Store
	inv *inventory.Inventory
	src *report.Source
	gen *report.Generator
	key *audit.Key
}

const resources = `
kind: User
name: erin
email: erin@example.test
groups: [web-team]
---
kind: User
name: frank
roles: [admin]
---
kind: ServiceAccount
name: backup
owner: erin
---
kind: Target
name: web1
address: 127.0.0.1:2201
labels: {env: prod, managed: "yes"}
---
kind: Target
name: web2
address: 127.0.0.1:2202
labels: {env: prod, managed: "yes"}
---
kind: Target
name: db1
address: 127.0.0.1:2203
labels: {env: data, managed: "yes"}
---
kind: Account
name: svc
target: web1
---
kind: Account
name: svc
target: web2
---
kind: Account
name: svc
target: db1
---
kind: Account
name: root
target: db1
---
kind: Policy
name: web-team-prod
type: target-access
subjects: {groups: [web-team]}
targets: {labels: {env: prod}}
target_users: [svc, "{username}"]
actions: [shell, exec]
---
kind: Policy
name: eng-db
type: target-access
subjects: {groups: [eng]}
targets: {names: [db1]}
target_users: [svc]
actions: [exec]
---
kind: Policy
name: admin-everywhere
type: target-access
subjects: {users: [frank]}
targets: {labels: {managed: "yes"}}
target_users: [svc]
actions: [shell]
---
kind: Policy
name: db-root
type: target-access
subjects: {users: [frank], groups: [dba]}
targets: {names: [db1]}
target_users: [root]
actions: [shell]
---
kind: Policy
name: erin-db-root
type: jit
subjects: {users: [erin]}
child_policies: [db-root]
duration: 1h
---
kind: Policy
name: backup
type: target-access
subjects: {service_accounts: [backup]}
targets: {names: [web2]}
target_users: [svc]
actions: [file-transfer]
autologin: true
source_cidrs: [10.0.0.0/8]
`

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	mk := make([]byte, 32)
	_, _ = rand.Read(mk)
	v, err := vault.New(mk)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := resource.DecodeYAML([]byte(resources))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	// alice and bob sign in through the directory: the gateway keeps
	// only their names, their groups stay in the directory.
	for _, u := range []string{"alice", "bob"} {
		if err := inv.EnsureDirectoryUser(ctx, u, ""); err != nil {
			t.Fatal(err)
		}
	}
	tree := testenv.StartLDAPTree(t)
	d, err := directory.New(directory.Config{
		URLs: []string{tree.Main.URL}, BindDN: tree.Main.AdminDN, BindPassword: tree.Main.AdminPassword,
		UserBase: testenv.LDAPSuffix, UserFilter: "(&(objectClass=inetOrgPerson)(uid={login}))",
		GroupBase: "ou=groups," + testenv.LDAPSuffix, FollowReferrals: true, Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, err := audit.NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	src := &report.Source{Store: st,
		Resources: func(ctx context.Context) ([]resource.Object, error) { return inv.List(ctx, "") },
		DirectoryGroups: func(ctx context.Context, user string) ([]string, error) {
			u, err := d.Lookup(ctx, user)
			if err != nil {
				return nil, err
			}
			return u.Groups, nil
		},
		RecordingURL: func(id string) string { return "https://gw.example.test/ui/recordings/" + id },
	}
	al := audit.New(st, log)
	w := &world{st: st, inv: inv, src: src, key: key,
		gen: &report.Generator{Source: src, Signer: key, Version: "test", Audit: al.Write, Now: func() time.Time { return now }}}
	w.seed(t)
	return w
}

func ago(d time.Duration) time.Time { return now.Add(-d) }

const day = 24 * time.Hour

// seed writes the trail: every event a report reads, one old enough (13
// months) that retention of 12 would have removed it.
func (w *world) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	evs := []store.AuditEvent{
		{Time: ago(395 * day), Type: audit.LoginSuccess, Outcome: audit.Success, User: "erin", Source: "192.0.2.10:5000"},
		{Time: ago(395 * day), Type: audit.SessionStart, Outcome: audit.Success, User: "erin", Source: "192.0.2.10:5000",
			Target: "web1", Account: "svc", SessionID: "s-old", Policy: "web-team-prod", Detail: map[string]any{"action": "shell"}},
		{Time: ago(395*day - 90*time.Second), Type: audit.SessionEnd, Outcome: audit.Success, User: "erin",
			Target: "web1", Account: "svc", SessionID: "s-old", Policy: "web-team-prod"},
		{Time: ago(3 * day), Type: audit.LoginSuccess, Outcome: audit.Success, User: "frank", Source: "198.51.100.7:40000"},
		{Time: ago(3 * day), Type: audit.SessionStart, Outcome: audit.Success, User: "frank", Source: "198.51.100.7:40000",
			Target: "db1", Account: "root", SessionID: "s-root", Policy: "db-root", Detail: map[string]any{"action": "shell"}},
		{Time: ago(3*day - 10*time.Minute), Type: audit.SessionEnd, Outcome: audit.Success, User: "frank",
			Target: "db1", Account: "root", SessionID: "s-root", Policy: "db-root"},
		{Time: ago(2 * day), Type: audit.SessionStart, Outcome: audit.Success, User: "frank", Source: "198.51.100.7:40001",
			Target: "web2", Account: "svc", SessionID: "s-admin", Policy: "admin-everywhere", Detail: map[string]any{"action": "exec"}},
		{Time: ago(2*day - time.Minute), Type: audit.SessionEnd, Outcome: audit.Failure, User: "frank",
			Target: "web2", Account: "svc", SessionID: "s-admin", Policy: "admin-everywhere"},
		{Time: ago(1 * day), Type: audit.SessionStart, Outcome: audit.Success, User: "erin", Source: "192.0.2.99:1",
			Target: "web2", Account: "erin", SessionID: "s-new", Policy: "web-team-prod", Detail: map[string]any{"action": "shell"}},
		{Time: ago(1 * day), Type: audit.LoginSuccess, Outcome: audit.Success, User: "erin", Source: "192.0.2.99:1"},
		{Time: ago(2 * time.Hour), Type: audit.RequestDeny, Outcome: audit.Deny, User: "erin", Source: "192.0.2.99:2",
			Target: "db1", Account: "root", Message: "no policy", Detail: map[string]any{"action": "shell"}},
		{Time: ago(5 * time.Hour), Type: audit.LoginFailure, Outcome: audit.Deny, User: "=cmd|' /C calc'!A0", Source: "203.0.113.5:1"},
		{Time: ago(4 * time.Hour), Type: audit.LoginFailure, Outcome: audit.Deny, User: "mallory", Source: "203.0.113.5:2"},
		{Time: ago(3 * time.Hour), Type: audit.ConsoleLoginFail, Outcome: audit.Deny, User: "mallory", Source: "203.0.113.5:3"},
		{Time: ago(3 * time.Hour), Type: audit.ConsoleLockout, Outcome: audit.Deny, User: "mallory", Source: "203.0.113.5:3"},
		{Time: ago(10 * day), Type: audit.ResourceApply, Outcome: audit.Success, User: "frank", Source: "127.0.0.1:9",
			Message: "applied 1 resources", Detail: map[string]any{"changes": []any{map[string]any{
				"resource": "Policy/db-root", "after": map[string]any{"target_users": []any{"root"}},
				"before": map[string]any{"target_users": []any{"svc"}}}}}},
		// hank put erin in web-team (her own groups list): he granted
		// what the group has.
		{Time: ago(9 * day), Type: audit.ResourceApply, Outcome: audit.Success, User: "hank", Source: "127.0.0.1:9",
			Message: "applied 1 resources", Detail: map[string]any{"changes": []any{map[string]any{
				"resource": "User/erin", "after": map[string]any{"groups": []any{"web-team"}}}}}},
	}
	for _, ev := range evs {
		if _, err := w.st.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []store.Recording{
		{ID: "s-old", User: "erin", Target: "web1", Account: "svc", Action: "shell", StartedAt: ago(395 * day)},
		{ID: "s-root", User: "frank", Target: "db1", Account: "root", Action: "shell", StartedAt: ago(3 * day)},
	} {
		if err := w.st.CreateRecording(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if _, err := w.st.AppendCommand(ctx, store.Command{Time: ago(3*day - time.Duration(i)*time.Minute), User: "frank",
			Target: "db1", Account: "root", SessionID: "s-root", Command: "id", Certain: true}); err != nil {
			t.Fatal(err)
		}
	}
	// Two just-in-time requests: one approved by a person in Slack, used
	// and expired; one approved by the policy at once.
	manual := store.JITRequest{ID: "jr-1", Requester: "erin", Policy: "erin-db-root", Target: "db1", Account: "root",
		Duration: time.Hour, Reason: "incident 42", State: store.JITPending, CreatedAt: ago(4 * day)}
	auto := store.JITRequest{ID: "jr-2", Requester: "erin", Policy: "erin-db-root", Target: "db1", Account: "root",
		Duration: 30 * time.Minute, Reason: "=HYPERLINK(1)", State: store.JITPending, CreatedAt: ago(2 * day)}
	for _, r := range []store.JITRequest{manual, auto} {
		if err := w.st.CreateJITRequest(ctx, r, store.JITEvent{Request: r.ID, Time: r.CreatedAt, Kind: "requested", Actor: "erin", Channel: "cli"}); err != nil {
			t.Fatal(err)
		}
	}
	approved := manual
	approved.State, approved.Approval, approved.DecidedBy, approved.DecidedAt = store.JITApproved, "manual", "frank", ago(4*day-5*time.Minute)
	approved.ExpiresAt, approved.Grant = approved.DecidedAt.Add(time.Hour), "JIT-ab12cd34"
	if err := w.st.TransitionJITRequest(ctx, approved, store.JITPending, store.JITEvent{Request: "jr-1", Time: approved.DecidedAt,
		Kind: "approved", Actor: "frank", Channel: "slack", Detail: "manual"}); err != nil {
		t.Fatal(err)
	}
	if err := w.st.AppendJITEvent(ctx, store.JITEvent{Request: "jr-1", Time: ago(4*day - 10*time.Minute), Kind: "used", Channel: "ssh", Detail: "session s-jit"}); err != nil {
		t.Fatal(err)
	}
	expired := approved
	expired.State = store.JITExpired
	if err := w.st.TransitionJITRequest(ctx, expired, store.JITApproved, store.JITEvent{Request: "jr-1", Time: approved.ExpiresAt, Kind: "expired"}); err != nil {
		t.Fatal(err)
	}
	autoOK := auto
	autoOK.State, autoOK.Approval, autoOK.DecidedBy, autoOK.DecidedAt = store.JITApproved, "auto", "policy erin-db-root", auto.CreatedAt
	autoOK.ExpiresAt, autoOK.Grant = auto.CreatedAt.Add(30*time.Minute), "JIT-ef56gh78"
	if err := w.st.TransitionJITRequest(ctx, autoOK, store.JITPending, store.JITEvent{Request: "jr-2", Time: auto.CreatedAt,
		Kind: "approved", Actor: "policy erin-db-root", Channel: "policy", Detail: "auto"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.AddSessionReview(ctx, store.SessionReview{RecordingID: "s-admin", Reviewer: "ivy",
		Decision: store.ReviewFlagged, Comment: "exit 1, ask frank", Time: ago(day)}); err != nil {
		t.Fatal(err)
	}
}

// outDir is where the tests leave each PDF's first page as an image for
// people to look at; its path is logged.
func outDir(t *testing.T) string {
	dir := filepath.Join(os.TempDir(), "portcullis-report-pages")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestReportsEndToEnd generates every built-in report from the seeded
// store, reads the CSV and JSON back row by row, reads the PDF with
// pdftotext, renders its first page, verifies the manifest, then tampers
// with each file and the manifest and sees verification fail.
func TestReportsEndToEnd(t *testing.T) {
	testenv.Require(t, "pdftotext", "pdftoppm")
	w := newWorld(t)
	ctx := context.Background()
	pub := w.key.Public()
	want := map[string][][]string{
		// identity, via, policy, jit_policy, target, target_user, privileged (columns 0, 2, 3, 4, 5, 6, 8)
		"entitlements": {
			{"alice", "directory-group:eng", "eng-db", "", "db1", "svc", ""},
			{"backup", "direct", "backup", "", "web2", "svc", ""},
			{"erin", "direct", "db-root", "erin-db-root", "db1", "root", "superuser account root"},
			{"erin", "group:web-team", "web-team-prod", "", "web1", "erin", ""},
			{"frank", "direct", "admin-everywhere", "", "web2", "svc", "every target; gateway admin"},
			{"frank", "direct", "db-root", "", "db1", "root", "superuser account root; gateway admin"},
		},
	}
	for _, k := range report.Kinds() {
		t.Run(k.Name, func(t *testing.T) {
			ex, err := w.gen.Generate(ctx, report.Request{Kind: k.Name, By: "ivy",
				Params: report.Params{Since: ago(400 * day), Until: now}})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := ex.WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			files := map[string][]byte{}
			for _, f := range ex.Files {
				files[f.Format] = f.Data
			}
			csvRows, err := csv.NewReader(bytes.NewReader(files["csv"])).ReadAll()
			if err != nil {
				t.Fatalf("CSV does not parse: %v", err)
			}
			var js report.JSONReport
			if err := json.Unmarshal(files["json"], &js); err != nil {
				t.Fatalf("JSON does not parse: %v", err)
			}
			if !slices.Equal(csvRows[0], js.Columns) {
				t.Fatalf("CSV header %v, JSON columns %v", csvRows[0], js.Columns)
			}
			if len(csvRows)-1 != len(js.Rows) || len(js.Rows) != ex.Manifest.Rows {
				t.Fatalf("CSV has %d rows, JSON %d, manifest %d", len(csvRows)-1, len(js.Rows), ex.Manifest.Rows)
			}
			for i, row := range csvRows[1:] {
				for j, col := range js.Columns {
					got := row[j]
					if strings.HasPrefix(got, "'") && strings.ContainsAny(got[1:2], "=+-@") {
						got = got[1:] // CSV injection defused
					}
					if got != js.Rows[i][col] {
						t.Fatalf("row %d column %s: CSV %q, JSON %q", i+1, col, row[j], js.Rows[i][col])
					}
				}
			}
			for _, wr := range want[k.Name] {
				if !hasRow(csvRows[1:], []int{0, 2, 3, 4, 5, 6, 8}, wr) {
					t.Errorf("no row %q in\n%s", wr, files["csv"])
				}
			}
			checkKind(t, k.Name, js, files["csv"])
			pdfText := pdfToText(t, files["pdf"])
			if !strings.Contains(pdfText, k.Title) {
				t.Errorf("PDF text lacks the title %q:\n%s", k.Title, pdfText)
			}
			if len(js.Rows) > 0 {
				first := js.Rows[0][js.Columns[0]]
				if !strings.Contains(pdfText, first) {
					t.Errorf("PDF text lacks the first row's %s %q", js.Columns[0], first)
				}
			}
			png := filepath.Join(outDir(t), k.Name)
			if out, err := exec.Command("pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "1", "-singlefile",
				filepath.Join(dir, ex.Files[2].Name), png).CombinedOutput(); err != nil {
				t.Fatalf("pdftoppm: %v\n%s", err, out)
			}
			t.Logf("first page: %s.png", png)

			manifest := filepath.Join(dir, ex.ManifestName)
			if _, err := report.Verify(manifest, pub); err != nil {
				t.Fatalf("verify a fresh export: %v", err)
			}
			for _, f := range ex.Files {
				flipByte(t, filepath.Join(dir, f.Name))
				if _, err := report.Verify(manifest, pub); err == nil || !strings.Contains(err.Error(), f.Name) {
					t.Errorf("verify with %s changed: %v", f.Name, err)
				}
				flipByte(t, filepath.Join(dir, f.Name))
			}
			if _, err := report.Verify(manifest, pub); err != nil {
				t.Fatalf("verify after undoing: %v", err)
			}
		})
	}
	if t.Failed() {
		return
	}
	// Generating a report is itself audited.
	evs, err := w.st.ListAudit(ctx, store.AuditFilter{Type: audit.ReportGenerate})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(report.Kinds()) || evs[0].User != "ivy" {
		t.Fatalf("report.generate events: %+v", evs)
	}
}

// checkKind checks what each built-in report must say about the seeded
// trail.
func checkKind(t *testing.T, kind string, js report.JSONReport, csvData []byte) {
	t.Helper()
	find := func(col, val string) map[string]string {
		for _, r := range js.Rows {
			if r[col] == val {
				return r
			}
		}
		t.Fatalf("%s: no row with %s %q in %+v", kind, col, val, js.Rows)
		return nil
	}
	switch kind {
	case "entitlements":
		for _, r := range js.Rows {
			want := map[string]string{"frank": "frank", "erin": "hank"}[r["identity"]]
			if r["via"] == "group:web-team" && r["granted_by"] != "hank" || r["policy"] == "db-root" && r["jit_policy"] == "" && r["granted_by"] != want {
				t.Errorf("granted by: %v", r)
			}
		}
	case "access-log":
		old := find("session_id", "s-old") // 13 months old: still there
		if old["duration_s"] != "90" || old["source"] != "192.0.2.10:5000" || old["recording"] != "https://gw.example.test/ui/recordings/s-old" {
			t.Errorf("s-old: %v", old)
		}
		root := find("session_id", "s-root")
		if root["commands"] != "3" || root["account"] != "root" || root["outcome"] != "success" || root["event"] != "shell" {
			t.Errorf("s-root: %v", root)
		}
		if r := find("session_id", "s-admin"); r["outcome"] != "failure" || r["recording"] != "" {
			t.Errorf("s-admin: %v", r)
		}
		if r := find("event", "deny shell"); r["target"] != "db1" || r["outcome"] != "deny" {
			t.Errorf("deny: %v", r)
		}
	case "privileged-sessions":
		if r := find("session_id", "s-root"); r["attention"] != "UNREVIEWED > 24 h" || r["privileged"] != "superuser account root; gateway admin" {
			t.Errorf("s-root: %v", r)
		}
		if r := find("session_id", "s-admin"); r["decision"] != "flagged" || r["reviewer"] != "ivy" || r["attention"] != "FLAGGED" {
			t.Errorf("s-admin: %v", r)
		}
		for _, r := range js.Rows {
			if r["user"] == "erin" {
				t.Errorf("erin's sessions are not privileged: %v", r)
			}
		}
	case "failed-logins":
		m := find("user", "mallory")
		if m["failures"] != "2" || m["lockouts"] != "1" || m["source"] != "203.0.113.5" {
			t.Errorf("mallory: %v", m)
		}
		if r := find("source", "192.0.2.99"); r["user"] != "erin" || r["first_seen_source"] != ago(day).Format(time.RFC3339) {
			t.Errorf("erin's new source: %v", r)
		}
		// A formula in a user name does not run in a spreadsheet.
		if !bytes.Contains(csvData, []byte(`'=cmd|`)) {
			t.Errorf("CSV injection not defused:\n%s", csvData)
		}
	case "changes":
		r := find("resource", "Policy/db-root")
		if r["actor"] != "frank" || r["before"] != `{"target_users":["svc"]}` || r["after"] != `{"target_users":["root"]}` {
			t.Errorf("change: %v", r)
		}
	case "jit-requests":
		r := find("id", "jr-1")
		if r["state"] != "expired" || r["approval"] != "manual" || r["decided_by"] != "frank" || r["channel"] != "slack" ||
			r["sessions"] != "1" || r["grant"] != "JIT-ab12cd34" || r["reason"] != "incident 42" || r["duration"] != "1h0m0s" {
			t.Errorf("jr-1: %v", r)
		}
		for _, step := range []string{"requested by erin (cli)", "approved by frank (slack)", "used (ssh)", "expired"} {
			if !strings.Contains(r["history"], step) {
				t.Errorf("jr-1 history lacks %q: %s", step, r["history"])
			}
		}
		if r := find("id", "jr-2"); r["approval"] != "auto" || r["decided_by"] != "policy erin-db-root" || r["state"] != "approved" {
			t.Errorf("jr-2: %v", r)
		}
		// A reason is the requester's text: no formula in a spreadsheet.
		if !bytes.Contains(csvData, []byte(`'=HYPERLINK(1)`)) {
			t.Errorf("CSV injection in a reason not defused:\n%s", csvData)
		}
	case "hygiene":
		find("finding", "no second factor")
		if r := find("name", "alice"); r["kind"] != "user" {
			t.Errorf("alice: %v", r)
		}
	}
}

func hasRow(rows [][]string, cols []int, want []string) bool {
	for _, r := range rows {
		ok := true
		for i, c := range cols {
			if r[c] != want[i] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func pdfToText(t *testing.T, pdf []byte) string {
	t.Helper()
	cmd := exec.Command("pdftotext", "-layout", "-", "-")
	cmd.Stdin = bytes.NewReader(pdf)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
