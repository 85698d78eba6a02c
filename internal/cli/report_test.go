package cli_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
)

// TestReportCLI exports reports through the CLI, verifies them offline
// with the public key, sees a changed file and a forged manifest fail
// (exit 1), and runs a review campaign to its sign-off.
func TestReportCLI(t *testing.T) {
	g := startGateway(t)
	ctx := context.Background()
	g.run(t, `
kind: User
name: erin
---
kind: User
name: ivy
roles: [auditor]
---
kind: Target
name: web1
address: 127.0.0.1:2201
---
kind: Account
name: root
target: web1
---
kind: Policy
name: erin-root
type: target-access
subjects: {users: [erin]}
targets: {names: [web1]}
target_users: [root]
actions: [shell]
`, "apply", "-f", "-").want(t, 0, nil, nil)
	at := time.Now().Add(-2 * time.Hour)
	for _, ev := range []store.AuditEvent{
		{Time: at, Type: audit.SessionStart, Outcome: audit.Success, User: "erin", Source: "192.0.2.1:1", Target: "web1",
			Account: "root", SessionID: "s1", Policy: "erin-root", Detail: map[string]any{"action": "shell"}},
		{Time: at.Add(time.Minute), Type: audit.SessionEnd, Outcome: audit.Success, User: "erin", Target: "web1",
			Account: "root", SessionID: "s1", Policy: "erin-root"},
	} {
		if _, err := g.st.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.st.CreateRecording(ctx, store.Recording{ID: "s1", User: "erin", Target: "web1", Account: "root", StartedAt: at}); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	g.run(t, "", "report", "ls").want(t, 0, []string{"entitlements", "access-log", "privileged-sessions"}, nil)
	for _, bad := range [][]string{
		{"report", "access-log", "--format", "xls", "-o", out},
		{"report", "access-log"},
		{"report", "access-log", "--since", "yesterday-ish", "-o", out},
		{"report", "nope", "-o", out},
	} {
		if r := g.run(t, "", bad...); r.code != 2 {
			t.Errorf("portcullis %s: exit %d, want 2\n%s", strings.Join(bad, " "), r.code, r.stderr)
		}
	}
	pdf := filepath.Join(out, "access.pdf")
	g.run(t, "", "report", "access-log", "--since", "1d", "--format", "pdf", "-o", pdf).want(t, 0, []string{"access.pdf", "1 rows"}, nil)
	pub := g.run(t, "", "report", "pubkey")
	pub.want(t, 0, []string{"ssh-ed25519 "}, nil)
	keyFile := filepath.Join(out, "report.pub")
	if err := os.WriteFile(keyFile, []byte(pub.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(out, "access.manifest.json")
	g.run(t, "", "report", "verify", manifest, "--key", keyFile).want(t, 0, []string{"report verified: access-log", "access.pdf"}, nil)

	// One byte of the PDF changed.
	b, _ := os.ReadFile(pdf)
	b[len(b)/3] ^= 0x20
	os.WriteFile(pdf, b, 0o600)
	g.run(t, "", "report", "verify", manifest, "--key", keyFile).want(t, 1, nil, []string{"NOT verified", "access.pdf", "was changed"})
	b[len(b)/3] ^= 0x20
	os.WriteFile(pdf, b, 0o600)

	// The manifest's row count changed: the signature no longer holds.
	mb, _ := os.ReadFile(manifest)
	os.WriteFile(manifest, []byte(strings.Replace(string(mb), `"rows": 1`, `"rows": 0`, 1)), 0o600)
	g.run(t, "", "report", "verify", manifest, "--key", keyFile).want(t, 1, nil, []string{"signature does not verify"})
	os.WriteFile(manifest, mb, 0o600)
	// Another key: refused.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ssh.NewPublicKey(other)
	g.run(t, "", "report", "verify", manifest, "--key", strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherKey)))).
		want(t, 1, nil, []string{"signature does not verify"})
	g.run(t, "", "report", "verify", manifest, "--key", keyFile).want(t, 0, nil, nil)

	// All three formats into a directory.
	dir := filepath.Join(out, "all")
	r := g.run(t, "", "report", "privileged-sessions", "--since", "1d", "-o", dir)
	r.want(t, 0, []string{".csv", ".json", ".pdf"}, nil)
	ms, _ := filepath.Glob(filepath.Join(dir, "*.manifest.json"))
	if len(ms) != 1 {
		t.Fatalf("manifests: %v", ms)
	}
	g.run(t, "", "report", "verify", ms[0], "--key", keyFile).want(t, 0, nil, nil)

	// A session review, then a campaign to its end.
	g.run(t, "", "recordings", "review", "s1", "--flag").want(t, 2, nil, nil)
	g.run(t, "", "recordings", "review", "s1", "--flag", "--comment", "root shell: ticket?").want(t, 0, []string{"flagged"}, nil)
	g.run(t, "", "review", "start", "--name", "q4").want(t, 0, []string{"opened with 1 entitlements"}, nil)
	g.run(t, "", "review", "start", "--every", "1h").want(t, 2, nil, []string{"at least 1d"})
	show := g.run(t, "", "review", "show", "1", "--json")
	show.want(t, 0, nil, nil)
	var cp struct {
		Items []struct {
			Item       int64  `json:"item"`
			Identity   string `json:"identity"`
			Privileged string `json:"privileged"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(show.stdout), &cp); err != nil || len(cp.Items) != 1 || cp.Items[0].Identity != "erin" ||
		cp.Items[0].Privileged != "superuser account root" {
		t.Fatalf("review show: %v %+v", err, cp)
	}
	g.run(t, "", "review", "close", "1", "--sign-off", "done").want(t, 1, nil, []string{"undecided"})
	// The socket's superuser applied the policy: it may not review it.
	g.run(t, "", "review", "decide", "1", "1", "keep").want(t, 1, nil, []string{"you granted it"})
	// Had someone else granted it (the campaign copies who did when it
	// opens), the superuser could decide.
	if _, err := g.st.AppendAudit(ctx, store.AuditEvent{Type: audit.ResourceApply, Outcome: audit.Success, User: "frank",
		Detail: map[string]any{"changes": []any{map[string]any{"resource": "Policy/erin-root", "after": map[string]any{}}}}}); err != nil {
		t.Fatal(err)
	}
	g.run(t, "", "review", "start", "--name", "q4b").want(t, 0, []string{"review 2"}, nil)
	g.run(t, "", "review", "close", "1", "--sign-off", "superseded by review 2").want(t, 1, nil, nil)
	g.run(t, "", "review", "decide", "2", "1", "revoke", "--comment", "no standing root").
		want(t, 0, []string{"revoke: deleted policy erin-root"}, nil)
	if r := g.run(t, "", "get", "policy", "erin-root"); r.code == 0 {
		t.Fatalf("the revoked policy is still there: %s", r.stdout)
	}
	g.run(t, "", "review", "close", "2", "--sign-off", "Q4 done").want(t, 0, []string{"closed: Q4 done"}, nil)
	g.run(t, "", "review", "start", "--every", "90d").want(t, 0, []string{"review 3", "a new review opens every 90d (schedule 1)"}, nil)
	g.run(t, "", "report", "schedules").want(t, 0, []string{"review\tevery 90d"}, nil)
	g.run(t, "", "report", "access-review", "--since", "1d", "--format", "csv", "-o", filepath.Join(out, "review.csv")).
		want(t, 0, []string{"2 rows"}, nil)
}
