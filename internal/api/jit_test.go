package api_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/jit"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
)

const jitStream = `kind: User
name: erin
---
kind: User
name: frank
---
kind: User
name: nora
---
kind: User
name: aud
roles: [auditor]
---
kind: User
name: ada
roles: [admin]
---
kind: Target
name: web1
address: 127.0.0.1:22
---
kind: Account
target: web1
name: deploy
---
kind: Policy
name: web-child
type: target-access
subjects: {groups: [nobody]}
targets: {names: [web1]}
target_users: [deploy]
actions: [shell]
---
kind: Policy
name: web-jit
type: jit
subjects: {users: [erin]}
child_policies: [web-child]
duration: 1h
approvers: {users: [frank]}
`

// TestJITRoutes checks who sees and decides which request through the
// API, with the console's principal (any front gives the same).
func TestJITRoutes(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v, _ := vault.New(key)
	log := slog.New(slog.DiscardHandler)
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := resource.DecodeYAML([]byte(jitStream))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	auditLog := audit.New(st, log)
	svc := jit.New(jit.Config{Store: st, Inventory: inv, Audit: auditLog, Log: log})
	h := api.New(api.Config{Inventory: inv, Store: st, Audit: auditLog, Log: log, JIT: svc})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := api.Principal{Name: r.Header.Get("X-Test-User"), Via: api.ViaConsole}
		h.ServeHTTP(w, r.WithContext(api.WithPrincipal(r.Context(), p)))
	}))
	t.Cleanup(srv.Close)
	do := func(user, method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("X-Test-User", user)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("erin", "POST", "/api/v1/jit/requests", `{"target":"web1","account":"deploy","duration":"30m","reason":"deploy fix"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var req api.JITRequestInfo
	_ = json.Unmarshal([]byte(body), &req)
	if req.State != "pending" || req.MayDecide {
		t.Fatalf("created %+v", req)
	}
	id := "/api/v1/jit/requests/" + req.ID
	for _, c := range []struct {
		name, user, method, path, body string
		want                           int
		contains                       string
	}{
		{"unknown field", "erin", "POST", "/api/v1/jit/requests", `{"target":"web1","as":"root"}`, 400, ""},
		{"bad duration", "erin", "POST", "/api/v1/jit/requests", `{"target":"web1","duration":"soon"}`, 400, "duration"},
		{"no target", "erin", "POST", "/api/v1/jit/requests", `{"reason":"x"}`, 400, "target"},
		{"not covered", "nora", "POST", "/api/v1/jit/requests", `{"target":"web1"}`, 403, "no jit policy"},
		{"bad state filter", "ada", "GET", "/api/v1/jit/requests?state=whatever", "", 400, "state"},
		{"stranger lists nothing", "nora", "GET", "/api/v1/jit/requests", "", 200, "[]"},
		{"stranger cannot read", "nora", "GET", id, "", 404, ""},
		{"stranger cannot approve", "nora", "POST", id + "/approve", "", 404, ""},
		{"requester cannot approve", "erin", "POST", id + "/approve", "", 403, "own request"},
		{"auditor reads", "aud", "GET", id, "", 200, `"kind":"requested"`},
		{"auditor cannot approve", "aud", "POST", id + "/approve", "", 403, "not an approver"},
		{"approver sees it to decide", "frank", "GET", "/api/v1/jit/requests?state=pending", "", 200, `"may_decide":true`},
		{"non-admin cannot revoke", "frank", "POST", id + "/revoke", "", 403, ""},
		{"explain names the jit policy to request through", "ada", "POST", "/api/v1/policy/explain",
			`{"user":"erin","target":"web1","action":"shell","account":"deploy"}`, 200, `"outcome":"may request"`},
		{"approver approves", "frank", "POST", id + "/approve", `{"channel":"console"}`, 200, `"state":"approved"`},
		{"explain names the grant", "ada", "POST", "/api/v1/policy/explain",
			`{"user":"erin","target":"web1","action":"shell","account":"deploy"}`, 200, "just-in-time grant of request " + req.ID},
		{"second approval", "frank", "POST", id + "/approve", "", 409, "not pending"},
		{"deny after approval", "ada", "POST", id + "/deny", `{"reason":"no"}`, 409, "not pending"},
		{"history has the console channel", "erin", "GET", id, "", 200, `"channel":"console"`},
		{"admin revokes", "ada", "POST", id + "/revoke", "", 200, `"state":"revoked"`},
		{"unknown request", "ada", "GET", "/api/v1/jit/requests/req-nope", "", 404, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := do(c.user, c.method, c.path, c.body)
			if code != c.want || !strings.Contains(body, c.contains) {
				t.Fatalf("%d %s, want %d with %q", code, body, c.want, c.contains)
			}
		})
	}
}
