package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
)

// env is a real API over a real store in a temporary directory.
type env struct {
	srv *httptest.Server
	inv *inventory.Inventory
	ca  *vault.CA
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := v.LoadOrCreateCA(filepath.Join(dir, "user_ca"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(api.Config{Inventory: inv, Store: st, CA: ca, Audit: audit.New(st, log), Log: log})
	srv := httptest.NewServer(api.WithLocalAdmin(h))
	t.Cleanup(srv.Close)
	return &env{srv: srv, inv: inv, ca: ca}
}

// do sends one request and returns the status and body.
func (e *env) do(t *testing.T, method, path, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return resp.StatusCode, string(b)
}

func userKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

// privateKeyPEM returns a fresh OpenSSH private key and its public line.
func privateKeyPEM(t *testing.T) (string, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block)), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

func stream(t *testing.T) string {
	return fmt.Sprintf(`kind: User
name: alice
email: alice@example.com
ssh_keys: [%q]
---
kind: Target
name: web1
address: 127.0.0.1:22
labels: {env: prod}
---
kind: Account
target: web1
name: svc-stats
---
kind: Policy
name: alice-web
type: target-access
subjects: {users: [alice]}
targets: {names: [web1]}
target_users: [svc-stats]
actions: [shell, exec]
`, userKey(t))
}

func TestAPI(t *testing.T) {
	e := newEnv(t)

	status, body := e.do(t, "POST", "/api/v1/apply", "application/yaml", stream(t))
	if status != http.StatusOK {
		t.Fatalf("apply: %d %s", status, body)
	}
	var res inventory.ApplyResult
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	if want := []string{"User/alice", "Target/web1", "Account/web1/svc-stats", "Policy/alice-web"}; fmt.Sprint(res.Created) != fmt.Sprint(want) {
		t.Errorf("created %v, want %v", res.Created, want)
	}

	keyPEM, keyPub := privateKeyPEM(t)
	imported := fmt.Sprintf(`[{"kind":"Account","target":"web1","name":"deploy","private_key":%q}]`, keyPEM)
	bigYAML := "kind: User\nname: big\nemail: " + strings.Repeat("x", resource.MaxStreamBytes) + "@example.com\n"

	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		wantStatus  int
		want        []string // substrings of the body
		notWant     []string
	}{
		{name: "list users", method: "GET", path: "/api/v1/resources/users", wantStatus: 200,
			want: []string{`"name":"alice"`, `"kind":"User"`}},
		{name: "get target case-insensitive kind", method: "GET", path: "/api/v1/resources/Target/web1", wantStatus: 200,
			want: []string{`"address":"127.0.0.1:22"`}},
		{name: "get account by TARGET/NAME", method: "GET", path: "/api/v1/resources/account/web1/svc-stats", wantStatus: 200,
			want: []string{`"public_key":"ssh-ed25519 `, `"target":"web1"`}, notWant: []string{"PRIVATE", "private_key"}},
		{name: "get account with escaped slash", method: "GET", path: "/api/v1/resources/account/web1%2Fsvc-stats", wantStatus: 200,
			want: []string{`"name":"svc-stats"`}},
		{name: "list all kinds", method: "GET", path: "/api/v1/resources", wantStatus: 200,
			want: []string{`"kind":"User"`, `"kind":"Policy"`}, notWant: []string{"PRIVATE", "private_key"}},
		{name: "list empty kind is an array", method: "GET", path: "/api/v1/resources/groups", wantStatus: 200,
			want: []string{"[]"}},
		{name: "import account key via JSON", method: "POST", path: "/api/v1/apply", contentType: "application/json",
			body: imported, wantStatus: 200, want: []string{`"created":["Account/web1/deploy"]`}, notWant: []string{"PRIVATE"}},
		{name: "imported account shows its public key only", method: "GET", path: "/api/v1/resources/accounts/web1/deploy", wantStatus: 200,
			want: []string{keyPub}, notWant: []string{"PRIVATE", "private_key"}},
		{name: "bad YAML names the document", method: "POST", path: "/api/v1/apply", contentType: "application/yaml",
			body: "kind: User\nname: bob\n---\nkind: User\nname: carol\nemial: c@example.com\n", wantStatus: 400,
			want: []string{"document 2 (User carol)", "emial"}},
		{name: "YAML syntax error", method: "POST", path: "/api/v1/apply", contentType: "application/yaml",
			body: "kind: User\nname: [\n", wantStatus: 400, want: []string{"document 1", "invalid YAML"}},
		{name: "YAML private_key_file refused", method: "POST", path: "/api/v1/apply", contentType: "application/yaml",
			body: "kind: Account\ntarget: web1\nname: ops\nprivate_key_file: id_ed25519\n", wantStatus: 400,
			want: []string{"document 1 (Account web1/ops)", "private_key"}},
		{name: "unknown kind in stream", method: "POST", path: "/api/v1/apply", contentType: "application/json",
			body: `[{"kind":"Widget","name":"w"}]`, wantStatus: 400, want: []string{"document 1", "unknown kind", "Widget"}},
		{name: "unknown kind in path", method: "GET", path: "/api/v1/resources/widgets", wantStatus: 400,
			want: []string{`unknown kind \"widgets\"`}},
		{name: "JSON unknown field", method: "POST", path: "/api/v1/apply", contentType: "application/json",
			body: `[{"kind":"User","name":"dave","shell":"/bin/sh"}]`, wantStatus: 400,
			want: []string{"document 1 (User dave)", "field shell: unknown field"}},
		{name: "JSON wrong type", method: "POST", path: "/api/v1/apply", contentType: "application/json",
			body: `[{"kind":"User","name":"dave","groups":"ops"}]`, wantStatus: 400,
			want: []string{"document 1 (User dave)", "field groups"}},
		{name: "JSON kind must be canonical", method: "POST", path: "/api/v1/apply", contentType: "application/json",
			body: `[{"kind":"users","name":"dave"}]`, wantStatus: 400, want: []string{`write \"User\"`}},
		{name: "apply json kind in lower case", method: "POST", path: "/api/v1/apply", contentType: "application/json",
			body: `[{"kind":"operation","name":"op-lower","patterns":["^x$"]}]`, wantStatus: 200, want: []string{`"created":["Operation/op-lower"]`}},
		{name: "JSON not an array", method: "POST", path: "/api/v1/apply", contentType: "application/json",
			body: `{"kind":"User","name":"dave"}`, wantStatus: 400, want: []string{"not a JSON array"}},
		{name: "JSON duplicate", method: "POST", path: "/api/v1/apply", contentType: "application/json",
			body: `[{"kind":"User","name":"dave"},{"kind":"User","name":"dave"}]`, wantStatus: 400,
			want: []string{"document 2", "same User as document 1"}},
		{name: "empty stream", method: "POST", path: "/api/v1/apply", contentType: "application/json",
			body: `[]`, wantStatus: 400, want: []string{"no resources"}},
		{name: "dangling reference", method: "POST", path: "/api/v1/apply", contentType: "application/yaml",
			body: "kind: Account\ntarget: nowhere\nname: ops\n", wantStatus: 400,
			want: []string{"document 1 (Account nowhere/ops)", `target \"nowhere\" does not exist`}},
		{name: "body too big", method: "POST", path: "/api/v1/apply", contentType: "application/yaml",
			body: bigYAML, wantStatus: 413, want: []string{"larger than", "split the stream"}},
		{name: "wrong content type", method: "POST", path: "/api/v1/apply", contentType: "text/plain",
			body: "kind: User\nname: x\n", wantStatus: 415, want: []string{"application/json", "application/yaml"}},
		{name: "delete referenced target", method: "DELETE", path: "/api/v1/resources/target/web1", wantStatus: 409,
			want: []string{"still referred to by", "Account/web1/svc-stats"}},
		{name: "delete missing", method: "DELETE", path: "/api/v1/resources/user/nobody", wantStatus: 404,
			want: []string{`User \"nobody\" not found`}},
		{name: "get missing", method: "GET", path: "/api/v1/resources/account/web1/nobody", wantStatus: 404,
			want: []string{`Account \"web1/nobody\" not found`}},
		{name: "delete account", method: "DELETE", path: "/api/v1/resources/account/web1/deploy", wantStatus: 200,
			want: []string{`"deleted":"Account/web1/deploy"`}},
		{name: "deleted account is gone", method: "GET", path: "/api/v1/resources/account/web1/deploy", wantStatus: 404},
		{name: "CA public key", method: "GET", path: "/api/v1/ca", wantStatus: 200,
			want: []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.ca.PublicKey())))}},
		{name: "audit shows apply", method: "GET", path: "/api/v1/audit?type=resource.apply", wantStatus: 200,
			want: []string{`"type":"resource.apply"`, `"user":"local-admin"`, `"id":1`, "4 created", `"created":["User/alice"`, `"changes":[{"after":{"email":"alice@example.com","kind":"User","name":"alice"`}},
		{name: "audit shows delete", method: "GET", path: "/api/v1/audit?type=resource.&after=1", wantStatus: 200,
			want: []string{`"type":"resource.delete"`, "deleted Account/web1/deploy", `"before":{"kind":"Account","name":"deploy"`}, notWant: []string{`"id":1,`}},
		{name: "audit since filter", method: "GET", path: "/api/v1/audit?since=2200-01-01T00:00:00Z", wantStatus: 200,
			want: []string{"[]\n"}, notWant: []string{"resource."}},
		{name: "audit until filter", method: "GET", path: "/api/v1/audit?until=2000-01-01T00:00:00Z", wantStatus: 200,
			want: []string{"[]\n"}, notWant: []string{"resource."}},
		{name: "audit time out of range", method: "GET", path: "/api/v1/audit?since=2999-01-01T00:00:00Z", wantStatus: 400,
			want: []string{"out of range"}},
		{name: "audit until before since", method: "GET", path: "/api/v1/audit?since=2020-01-02T00:00:00Z&until=2020-01-01T00:00:00Z", wantStatus: 400,
			want: []string{"must be after"}},
		{name: "audit limit", method: "GET", path: "/api/v1/audit?limit=1&after=0", wantStatus: 200,
			want: []string{`"id":1`}, notWant: []string{`"id":2`}},
		{name: "audit bad time", method: "GET", path: "/api/v1/audit?since=yesterday", wantStatus: 400,
			want: []string{"since", "RFC 3339"}},
		{name: "audit unknown parameter", method: "GET", path: "/api/v1/audit?sesion=x", wantStatus: 400,
			want: []string{`unknown query parameter \"sesion\"`}},
		{name: "audit bad limit", method: "GET", path: "/api/v1/audit?limit=0", wantStatus: 400, want: []string{"limit"}},
		{name: "unknown route", method: "GET", path: "/api/v1/nothing", wantStatus: 404, want: []string{"no API route"}},
		{name: "wrong method", method: "PUT", path: "/api/v1/apply", wantStatus: 405, want: []string{"PUT", "allowed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.do(t, tc.method, tc.path, tc.contentType, tc.body)
			if status != tc.wantStatus {
				t.Errorf("status %d, want %d; body %s", status, tc.wantStatus, body)
			}
			if status >= 400 {
				var er api.ErrorResponse
				if err := json.Unmarshal([]byte(body), &er); err != nil || er.Error.Message == "" {
					t.Errorf("error body %q is not {\"error\": ...}", body)
				}
				if strings.Contains(er.Error.Message, "\n") {
					t.Errorf("error message spans lines: %q", er.Error)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("body holds %q:\n%s", w, body)
				}
			}
		})
	}

	// Refused applies store nothing.
	objs, err := e.inv.List(context.Background(), resource.KindUser)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Errorf("users after refused applies: %v", objs)
	}
}

// TestAPIReapplyKeepsAccountKey checks that applying an account again
// without a key keeps the generated one (the round trip the CLI relies on).
func TestAPIReapplyKeepsAccountKey(t *testing.T) {
	e := newEnv(t)
	s := stream(t)
	if status, body := e.do(t, "POST", "/api/v1/apply", "application/yaml", s); status != 200 {
		t.Fatalf("apply: %d %s", status, body)
	}
	_, before := e.do(t, "GET", "/api/v1/resources/account/web1/svc-stats", "", "")
	status, body := e.do(t, "POST", "/api/v1/apply", "application/yaml", s)
	if status != 200 || strings.Contains(body, "created") {
		t.Fatalf("re-apply: %d %s", status, body)
	}
	if _, after := e.do(t, "GET", "/api/v1/resources/account/web1/svc-stats", "", ""); after != before {
		t.Errorf("account changed on re-apply:\n%s\n%s", before, after)
	}
}

func TestAPIRequiresPrincipal(t *testing.T) {
	srv := httptest.NewServer(api.New(api.Config{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/resources/users")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", resp.StatusCode)
	}
}

func TestAPIRecoversPanics(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// A nil inventory makes the handler dereference nil: a stand-in for
	// any bug.
	srv := httptest.NewServer(api.WithLocalAdmin(api.New(api.Config{Log: log})))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/resources/users")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", resp.StatusCode)
	}
	id := resp.Header.Get("X-Request-Id")
	if id == "" || !strings.Contains(string(b), "request id "+id) {
		t.Errorf("500 body %q lacks request id %q", b, id)
	}
	if strings.Contains(string(b), "nil pointer") || strings.Contains(string(b), "goroutine") {
		t.Errorf("500 body leaks detail: %s", b)
	}
	if !strings.Contains(logs.String(), "panic in API handler") || !strings.Contains(logs.String(), id) {
		t.Errorf("panic not logged with request id:\n%s", logs.String())
	}
}
