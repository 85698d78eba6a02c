package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/apikey"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/livesession"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/report"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/rotate"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
	"golang.org/x/crypto/ssh"
)

// The callers of the authorization matrix, in column order.
var matrixCallers = []string{"anonymous", "norole", "auditor", "admin", "registration", "revoked", "expired", "wrongsource"}

// matrixStream: three users (no role, auditor, admin), a target the
// no-role user may reach, and resources for the admin to delete.
const matrixStream = `kind: User
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
name: svc
---
kind: Policy
name: nora-web
type: target-access
subjects: {users: [nora]}
targets: {names: [web1]}
target_users: [svc]
actions: [shell]
---
kind: Operation
name: op-del
patterns: ["^x$"]
`

// authzEnv is the HTTPS front (API keys) over a real store, inventory,
// recording manager and a fake session controller.
type authzEnv struct {
	srv *httptest.Server
	// console stands in for the web console's front: it serves the
	// user named by the X-Test-User header as a console principal.
	console *httptest.Server
	st      *sqlite.Store
	keys    map[string]string // caller -> X-API-KEY value
}

func newAuthzEnv(t *testing.T) *authzEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
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
	mgr, err := recording.NewManager(filepath.Join(dir, "recordings"), st, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		mgr.Run(runCtx)
	}()
	sessions := &fakeSessions{running: []livesession.Session{
		{ID: "s-nora", User: "nora", Target: "web1"}, {ID: "s-ada", User: "ada", Target: "web1"}}}
	auditLog := audit.New(st, log)
	mfaSvc, err := mfa.New(mfa.Config{Store: st, Vault: v, Audit: auditLog, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	rot, err := rotate.New(rotate.Config{Inventory: inv, Vault: v, HostKeys: st, Audit: auditLog, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	_, reportPriv, _ := ed25519.GenerateKey(rand.Reader)
	reportKey, err := audit.NewKey(reportPriv)
	if err != nil {
		t.Fatal(err)
	}
	src := &report.Source{Store: st, Resources: func(ctx context.Context) ([]resource.Object, error) { return inv.List(ctx, "") }}
	gen := &report.Generator{Source: src, Signer: reportKey, Version: "test", Audit: auditLog.Write}
	h := api.New(api.Config{Inventory: inv, Store: st, CA: ca, Audit: auditLog, Log: log, Sessions: sessions, Recordings: mgr, MFA: mfaSvc, Rotator: rot,
		Reports: gen, Reviews: &report.Reviews{Source: src, Inventory: inv, Audit: auditLog.Write},
		Schedules: &report.Scheduler{Generator: gen, Store: st, Audit: auditLog.Write, Log: log}})
	admin := httptest.NewServer(api.WithLocalAdmin(h))
	srv := httptest.NewServer(api.HTTPS(h, api.NewKeyAuthenticator(st, auditLog)))
	console := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := api.Principal{Name: r.Header.Get("X-Test-User"), Via: api.ViaConsole}
		h.ServeHTTP(w, r.WithContext(api.WithPrincipal(r.Context(), p)))
	}))
	t.Cleanup(func() {
		console.Close()
		srv.Close()
		admin.Close()
		cancel()
		<-done
		st.Close()
	})
	e := &authzEnv{srv: srv, console: console, st: st, keys: map[string]string{}}

	// Resources and keys through the admin socket, as an operator would.
	adminDo := func(method, path, ct, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, admin.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		resp, err := admin.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return out
	}
	adminDo("POST", "/api/v1/apply", "application/yaml", matrixStream)
	newKey := func(caller, body string) string {
		out := adminDo("POST", "/api/v1/apikeys", "application/json", body)
		e.keys[caller] = out["key"].(string)
		return out["id"].(string)
	}
	newKey("norole", `{"name":"n","kind":"access","owner":"nora"}`)
	newKey("auditor", `{"name":"a","kind":"access","owner":"aud"}`)
	newKey("admin", `{"name":"a","kind":"access","owner":"ada"}`)
	newKey("registration", `{"name":"r","kind":"registration"}`)
	revoked := newKey("revoked", `{"name":"r","kind":"access","owner":"ada"}`)
	adminDo("POST", "/api/v1/apikeys/"+revoked+"/revoke", "application/json", "")
	newKey("expired", `{"name":"e","kind":"access","owner":"ada","expires_in":"1ns"}`)
	newKey("wrongsource", `{"name":"w","kind":"access","owner":"ada","source_cidrs":["10.0.0.0/8"]}`)
	newKey("victim", `{"name":"v","kind":"access","owner":"ada"}`)
	time.Sleep(time.Millisecond) // let the 1ns key expire on any clock

	// Recordings: one of ada's to read, one to delete per caller.
	rec, err := mgr.Start(ctx, recording.Meta{ID: "rec-ada", User: "ada", Target: "web1", Account: "svc", Action: "shell", Width: 80, Height: 24})
	if err != nil {
		t.Fatal(err)
	}
	rec.Output([]byte("hello matrix\r\n"))
	rec.Close(ctx)
	rec, err = mgr.Start(ctx, recording.Meta{ID: "rec-del", User: "ada", Target: "web1", Account: "svc", Action: "shell", Width: 80, Height: 24})
	if err != nil {
		t.Fatal(err)
	}
	rec.Close(ctx)
	return e
}

// matrixCase is one route: the request to send and the status each
// caller gets, in matrixCallers order.
type matrixCase struct {
	pattern string // the route, as api.Routes lists it
	path    string
	body    func(caller string) string
	want    [8]int
}

// Statuses by caller kind: anonymous, revoked and expired keys get 401
// everywhere, a key used from outside its networks 403, a registration
// key 403 but on the registration route.
func row(norole, auditor, admin, registration int) [8]int {
	return [8]int{401, norole, auditor, admin, registration, 401, 401, 403}
}

func constBody(s string) func(string) string { return func(string) string { return s } }

var matrix = []matrixCase{
	{pattern: "GET /api/v1/openapi.json", want: [8]int{200, 200, 200, 200, 200, 401, 401, 403}},
	// Public (the body is the credential); this API has no Kubernetes
	// front to issue them: 503 to whoever gets through.
	{pattern: "POST /api/v1/kube/credentials", body: constBody(`{"user":"ada","password":"x","target":"k1"}`),
		want: [8]int{503, 503, 503, 503, 503, 401, 401, 403}},
	{pattern: "GET /api/v1/me", want: row(200, 200, 200, 403)},
	{pattern: "POST /api/v1/apply", body: func(c string) string {
		return "kind: Operation\nname: op-" + c + "\npatterns: [\"^y$\"]\n"
	}, want: row(403, 403, 200, 403)},
	{pattern: "GET /api/v1/resources", want: row(403, 403, 200, 403)},
	{pattern: "GET /api/v1/resources/{kind}", path: "/api/v1/resources/target", want: row(200, 200, 200, 403)},
	{pattern: "GET /api/v1/resources/{kind}/{name...}", path: "/api/v1/resources/target/web1", want: row(200, 404, 200, 403)},
	{pattern: "DELETE /api/v1/resources/{kind}/{name...}", path: "/api/v1/resources/operation/op-del", want: row(403, 403, 200, 403)},
	// No such account: admins hear so, nobody else learns anything.
	{pattern: "POST /api/v1/accounts/{target}/{name}/rotate", path: "/api/v1/accounts/web1/nobody/rotate", want: row(403, 403, 404, 403)},
	{pattern: "GET /api/v1/ca", want: row(200, 200, 200, 403)},
	{pattern: "GET /api/v1/reports", want: row(403, 200, 200, 403)},
	{pattern: "POST /api/v1/reports/{kind}", path: "/api/v1/reports/access-log", body: constBody(`{"formats":["csv"]}`), want: row(403, 200, 200, 403)},
	{pattern: "GET /api/v1/reports/schedules", want: row(403, 403, 200, 403)},
	{pattern: "POST /api/v1/reports/schedules", body: func(string) string {
		return `{"kind":"access-log","every":"24h","dest":` + strconv.Quote(os.TempDir()) + `}`
	}, want: row(403, 403, 201, 403)},
	{pattern: "DELETE /api/v1/reports/schedules/{id}", path: "/api/v1/reports/schedules/999", want: row(403, 403, 404, 403)},
	{pattern: "GET /api/v1/recordings/{id}/reviews", path: "/api/v1/recordings/rec-ada/reviews", want: row(403, 200, 200, 403)},
	// rec-ada is the admin's own session: she may not review it.
	{pattern: "POST /api/v1/recordings/{id}/reviews", path: "/api/v1/recordings/rec-ada/reviews", body: constBody(`{"decision":"reviewed"}`),
		want: row(403, 200, 403, 403)},
	{pattern: "GET /api/v1/reviews", want: row(403, 200, 200, 403)},
	{pattern: "POST /api/v1/reviews", body: constBody(`{}`), want: row(403, 201, 201, 403)},
	{pattern: "GET /api/v1/reviews/{id}", path: "/api/v1/reviews/999", want: row(403, 404, 404, 403)},
	{pattern: "POST /api/v1/reviews/{id}/items/{item}", path: "/api/v1/reviews/999/items/1", body: constBody(`{"decision":"keep"}`),
		want: row(403, 404, 404, 403)},
	{pattern: "POST /api/v1/reviews/{id}/close", path: "/api/v1/reviews/999/close", body: constBody(`{"sign_off":"done"}`),
		want: row(403, 404, 404, 403)},
	{pattern: "GET /api/v1/audit", want: row(200, 200, 200, 403)},
	{pattern: "POST /api/v1/policy/explain", body: constBody(`{"user":"nora","target":"web1","action":"shell","source":"10.1.2.3"}`),
		want: row(200, 403, 200, 403)},
	{pattern: "POST /api/v1/policy/test", body: constBody(`{"cases":[{"user":"nora","target":"web1","action":"shell","source":"10.1.2.3","expect":"allow"}]}`),
		want: row(403, 403, 200, 403)},
	{pattern: "GET /api/v1/audit/verify", want: row(403, 200, 200, 403)},
	{pattern: "POST /api/v1/audit/verify", body: constBody("{not a checkpoint}\n"), want: row(403, 400, 400, 403)},
	{pattern: "GET /api/v1/audit/pubkey", want: row(403, 404, 404, 403)},
	{pattern: "GET /api/v1/audit/export", want: row(403, 200, 200, 403)},
	{pattern: "GET /api/v1/sessions", want: row(200, 200, 200, 403)},
	// nora may end her own session, not ada's; the auditor neither.
	{pattern: "POST /api/v1/sessions/{id}/kill", path: "/api/v1/sessions/s-ada/kill", body: constBody(`{}`),
		want: row(404, 404, 200, 403)},
	// rec-ada has ended: those who may see it hear "not running".
	{pattern: "GET /api/v1/sessions/{id}/watch", path: "/api/v1/sessions/rec-ada/watch", want: row(404, 404, 404, 403)},
	{pattern: "GET /api/v1/recordings", want: row(200, 200, 200, 403)},
	{pattern: "GET /api/v1/recordings/search", path: "/api/v1/recordings/search?q=matrix", want: row(403, 200, 200, 403)},
	{pattern: "GET /api/v1/recordings/check", path: "/api/v1/recordings/check", want: row(403, 200, 200, 403)},
	{pattern: "GET /api/v1/recordings/{id}", path: "/api/v1/recordings/rec-ada", want: row(404, 200, 200, 403)},
	{pattern: "GET /api/v1/recordings/{id}/cast", path: "/api/v1/recordings/rec-ada/cast?purpose=play", want: row(404, 200, 200, 403)},
	{pattern: "DELETE /api/v1/recordings/{id}", path: "/api/v1/recordings/rec-del", want: row(403, 403, 200, 403)},
	{pattern: "GET /api/v1/commands", want: row(200, 200, 200, 403)},
	// Keys cannot make keys (see TestAPIKeyRules for the console).
	{pattern: "POST /api/v1/apikeys", body: constBody(`{"name":"mine","kind":"access"}`), want: row(403, 403, 403, 403)},
	{pattern: "GET /api/v1/apikeys", want: row(200, 200, 200, 403)},
	{pattern: "POST /api/v1/apikeys/{id}/revoke", path: "VICTIM", want: row(404, 404, 200, 403)},
	{pattern: "GET /api/v1/settings", want: row(403, 403, 200, 403)},
	{pattern: "PUT /api/v1/settings/{name}", path: "/api/v1/settings/global_registration_keys", body: constBody(`{"value":true}`),
		want: row(403, 403, 200, 403)},
	// Changing one's own password needs the current one; nobody but an
	// admin sets another's.
	{pattern: "POST /api/v1/users/{name}/password", path: "/api/v1/users/nora/password",
		body: constBody(`{"password":"a long new password"}`), want: row(403, 403, 204, 403)},
	// A second factor: the user themself or an admin; nobody else, and
	// only an admin resets one. nora enrolls, then ada enrolls her again
	// (still pending: allowed); a wrong code confirms nothing.
	{pattern: "GET /api/v1/users/{name}/mfa", path: "/api/v1/users/nora/mfa", want: row(200, 403, 200, 403)},
	{pattern: "POST /api/v1/users/{name}/mfa", path: "/api/v1/users/nora/mfa", want: row(201, 403, 201, 403)},
	{pattern: "POST /api/v1/users/{name}/mfa/confirm", path: "/api/v1/users/nora/mfa/confirm",
		body: constBody(`{"code":"abc"}`), want: row(400, 403, 400, 403)},
	{pattern: "DELETE /api/v1/users/{name}/mfa", path: "/api/v1/users/nora/mfa", want: row(403, 403, 204, 403)},
	// Own SSH keys: the user themself or an admin. Adding one's own needs
	// the current password (nora has none: 403); the admin adds the key
	// to nora, then nora removes it (no password needed to give up
	// access), so the admin, last, finds it gone.
	{pattern: "GET /api/v1/users/{name}/ssh-keys", path: "/api/v1/users/nora/ssh-keys", want: row(200, 403, 200, 403)},
	{pattern: "POST /api/v1/users/{name}/ssh-keys", path: "/api/v1/users/nora/ssh-keys",
		body: constBody(`{"key":"` + testHostKey + `","current_password":"not hers"}`), want: row(403, 403, 201, 403)},
	{pattern: "DELETE /api/v1/users/{name}/ssh-keys/{fingerprint...}", path: "/api/v1/users/nora/ssh-keys/" + testHostKeyFP,
		want: row(204, 403, 404, 403)},
	{pattern: "POST /api/v1/targets/register", body: func(c string) string {
		return fmt.Sprintf(`{"name":"reg-%s","address":"127.0.0.1:22","host_key":%q,"labels":{"env":"test"}}`, c, testHostKey)
	}, want: row(403, 403, 201, 201)},
	// No agent listener here: the script and the binary are not served,
	// but only registration keys and admins hear that.
	{pattern: "GET /api/v1/autodiscovery-script", want: row(403, 403, 404, 404)},
	{pattern: "GET /api/v1/agent-binary", want: row(403, 403, 404, 404)},
	// web1 has no learned host key here: admins hear so.
	{pattern: "POST /api/v1/targets/{name}/pin", path: "/api/v1/targets/web1/pin", want: row(403, 403, 409, 403)},
	// This gateway has no JIT service: users reach the routes and hear
	// 503; who may decide what is tested in jit_test.go.
	{pattern: "POST /api/v1/jit/requests", body: constBody(`{"target":"web1","reason":"x"}`), want: row(503, 503, 503, 403)},
	{pattern: "GET /api/v1/jit/requests", want: row(503, 503, 503, 403)},
	{pattern: "GET /api/v1/jit/requests/{id}", path: "/api/v1/jit/requests/req-x", want: row(503, 503, 503, 403)},
	{pattern: "POST /api/v1/jit/requests/{id}/approve", path: "/api/v1/jit/requests/req-x/approve", want: row(503, 503, 503, 403)},
	{pattern: "POST /api/v1/jit/requests/{id}/deny", path: "/api/v1/jit/requests/req-x/deny", want: row(503, 503, 503, 403)},
	{pattern: "POST /api/v1/jit/requests/{id}/revoke", path: "/api/v1/jit/requests/req-x/revoke", want: row(403, 403, 503, 403)},
	{pattern: "POST /api/v1/jit/links/{token}", path: "/api/v1/jit/links/xyz", want: row(503, 503, 503, 403)},
}

// testHostKey is a valid ed25519 public key for registrations (and, in
// the matrix, a user key); testHostKeyFP is its fingerprint.
const (
	testHostKey   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	testHostKeyFP = "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"
)

// TestAuthorizationMatrix sends every route as every kind of caller and
// checks the status. A route of api.Routes without a row fails the test,
// so that no route ships without a decision on who may call it.
func TestAuthorizationMatrix(t *testing.T) {
	e := newAuthzEnv(t)
	victim := strings.SplitN(strings.TrimPrefix(e.keys["victim"], "pck_"), ".", 2)[0]
	byPattern := map[string]matrixCase{}
	for _, c := range matrix {
		byPattern[c.pattern] = c
	}
	for _, r := range api.Routes() {
		pattern := r.Method + " " + r.Path
		c, ok := byPattern[pattern]
		if !ok {
			t.Errorf("route %s has no row in the authorization matrix: add one", pattern)
			continue
		}
		delete(byPattern, pattern)
		method, path, _ := strings.Cut(c.pattern, " ")
		if c.path == "VICTIM" {
			c.path = "/api/v1/apikeys/" + victim + "/revoke"
		}
		if c.path != "" {
			path = c.path
		}
		// The admin goes last: on routes that change state, the others
		// are judged against the state before the admin changed it.
		for i, who := range matrixCallers {
			if who != "admin" {
				e.check(t, who, method, path, c, i)
			}
		}
		e.check(t, "admin", method, path, c, slices.Index(matrixCallers, "admin"))
	}
	for p := range byPattern {
		t.Errorf("matrix row %s matches no route", p)
	}
}

func (e *authzEnv) check(t *testing.T, who, method, path string, c matrixCase, col int) {
	t.Helper()
	var body io.Reader
	if c.body != nil {
		body = strings.NewReader(c.body(who))
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.body != nil {
		ct := "application/json"
		if strings.HasSuffix(c.pattern, "/apply") {
			ct = "application/yaml"
		}
		req.Header.Set("Content-Type", ct)
	}
	if k := e.keys[who]; k != "" {
		req.Header.Set(api.APIKeyHeader, k)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != c.want[col] {
		t.Errorf("%s %s as %s: status %d, want %d: %s", method, path, who, resp.StatusCode, c.want[col], strings.TrimSpace(string(b)))
	}
	if resp.StatusCode >= 400 {
		var er api.ErrorResponse
		if err := json.Unmarshal(b, &er); err != nil || er.Error.Code == "" || er.Error.Message == "" {
			t.Errorf("%s %s as %s: error body %q is not {\"error\":{\"code\",\"message\"}}", method, path, who, b)
		}
	}
}

// TestAPIKeyUseAudited: every request with a key leaves an event naming
// the key id, never the secret; refused keys too.
func TestAPIKeyUseAudited(t *testing.T) {
	e := newAuthzEnv(t)
	for _, who := range []string{"admin", "revoked", "wrongsource"} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/me", nil)
		req.Header.Set(api.APIKeyHeader, e.keys[who])
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	evs, err := e.st.ListAudit(context.Background(), store.AuditFilter{Type: "apikey."})
	if err != nil {
		t.Fatal(err)
	}
	var uses, denies int
	for _, ev := range evs {
		raw, _ := json.Marshal(ev)
		for _, k := range e.keys {
			secret := k[strings.Index(k, ".")+1:]
			if strings.Contains(string(raw), secret) {
				t.Fatalf("audit event %s carries a key secret", raw)
			}
		}
		switch ev.Type {
		case audit.APIKeyUse:
			uses++
			if ev.Detail["key_id"] == "" || ev.User != "ada" {
				t.Errorf("use event %+v lacks key id or user", ev)
			}
		case audit.APIKeyDeny:
			denies++
		}
	}
	if uses != 1 || denies != 2 {
		t.Errorf("%d use and %d deny events, want 1 and 2", uses, denies)
	}
}

// send makes one request as who (a key of e.keys, or a raw key value).
func (e *authzEnv) send(t *testing.T, key, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if k, ok := e.keys[key]; ok {
		key = k
	}
	req.Header.Set(api.APIKeyHeader, key)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// asUser sends a request as a console user (through e.console).
func (e *authzEnv) asUser(t *testing.T, user, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.console.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Test-User", user)
	resp, err := e.console.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// TestAPIKeyRules: nobody makes a key with more rights than they hold.
func TestAPIKeyRules(t *testing.T) {
	e := newAuthzEnv(t)
	for _, c := range []struct {
		name, who, body string
		want            int
	}{
		{"own access key", "nora", `{"name":"k","kind":"access"}`, 201},
		{"key for someone else", "nora", `{"name":"k","kind":"access","owner":"ada"}`, 403},
		{"registration key without admin", "aud", `{"name":"k","kind":"registration"}`, 403},
		{"admin makes a key for nora", "ada", `{"name":"k","kind":"access","owner":"nora"}`, 201},
		{"owner that does not exist", "ada", `{"name":"k","kind":"access","owner":"ghost"}`, 400},
		{"bad kind", "ada", `{"name":"k","kind":"root"}`, 400},
		{"bad cidr", "ada", `{"name":"k","kind":"access","source_cidrs":["10.0.0.0/33"]}`, 400},
		{"bad duration", "ada", `{"name":"k","kind":"access","expires_in":"-1h"}`, 400},
		// The same duration forms as the CLI: the console sends what was typed.
		{"expiry in days", "ada", `{"name":"k","kind":"access","expires_in":"30d"}`, 201},
		{"expiry in days and hours", "ada", `{"name":"k","kind":"access","expires_in":"1d12h"}`, 201},
		{"expiry in weeks", "ada", `{"name":"k","kind":"access","expires_in":"2w"}`, 400},
		{"unknown field", "ada", `{"name":"k","kind":"access","admin":true}`, 400},
		{"no name", "ada", `{"kind":"access"}`, 400},
		{"owner on a global registration key", "ada", `{"name":"k","kind":"registration","owner":"ada"}`, 400},
	} {
		if got, out := e.asUser(t, c.who, "POST", "/api/v1/apikeys", c.body); got != c.want {
			t.Errorf("%s: status %d, want %d: %v", c.name, got, c.want, out)
		}
	}
	// A key cannot make keys: one stolen would outlive its revocation.
	if got, out := e.send(t, "admin", "POST", "/api/v1/apikeys", `{"name":"k","kind":"access"}`); got != 403 {
		t.Errorf("a key made a key: %d %v", got, out)
	}
}

// TestRegistrationKeyLimitsOverHTTP: POST /api/v1/targets/register binds
// a registration key's limits as the agent front does. It blocks a spent
// key, or one meant for web-* in staging, registering any name in any
// environment (db-prod-0 labelled prod) as often as its holder likes.
func TestRegistrationKeyLimitsOverHTTP(t *testing.T) {
	e := newAuthzEnv(t)
	id, value, _ := apikey.New()
	_, secret, _ := apikey.Parse(value)
	if err := e.st.CreateAPIKey(context.Background(), store.APIKey{ID: id, Name: "agents", Kind: store.APIKeyRegistration,
		SecretHash: apikey.Hash(id, secret), CreatedAt: time.Now(), MaxUses: 1,
		NamePattern: "web-*", Environment: "staging"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, labels string
		want         int
		wantEnv      string
	}{
		{name: "db-prod-0", labels: `{"environment":"prod"}`, want: 403},
		{name: "db-prod-1", want: 403},
		{name: "web-0", labels: `{"environment":"prod"}`, want: 403},
		{name: "web-0", labels: `{"team":"a"}`, want: 201, wantEnv: "staging"},
		{name: "web-1", want: 403}, // used up
	} {
		labels := c.labels
		if labels == "" {
			labels = "{}"
		}
		s, out := e.send(t, value, "POST", "/api/v1/targets/register",
			fmt.Sprintf(`{"name":%q,"address":"10.9.9.1:22","host_key":%q,"labels":%s}`, c.name, testHostKey, labels))
		if s != c.want {
			t.Errorf("%s %s: %d %v, want %d", c.name, labels, s, out, c.want)
			continue
		}
		if c.wantEnv != "" {
			if l, _ := out["labels"].(map[string]any); l["environment"] != c.wantEnv {
				t.Errorf("%s: labels %v, want environment %s", c.name, out["labels"], c.wantEnv)
			}
		}
	}
	if k, err := e.st.GetAPIKey(context.Background(), id); err != nil || k.Uses != 1 {
		t.Errorf("uses %d (%v), want 1: only the accepted registration counts", k.Uses, err)
	}
}

// TestRegistrationKeySetting: with global keys off, only an admin's own
// registration keys register, and stop when the owner loses the role.
func TestRegistrationKeySetting(t *testing.T) {
	e := newAuthzEnv(t)
	reg := func(key, name string) int {
		s, _ := e.send(t, key, "POST", "/api/v1/targets/register",
			fmt.Sprintf(`{"name":%q,"address":"127.0.0.1:22","host_key":%q}`, name, testHostKey))
		return s
	}
	if s := reg("registration", "t1"); s != 201 {
		t.Fatalf("global key: %d", s)
	}
	if s := reg("registration", "t1"); s != 200 {
		t.Errorf("repeated registration: %d, want 200", s)
	}
	if s, _ := e.send(t, "registration", "POST", "/api/v1/targets/register",
		fmt.Sprintf(`{"name":"t1","address":"127.0.0.2:22","host_key":%q}`, testHostKey)); s != 409 {
		t.Errorf("registration changing a target: %d, want 409", s)
	}
	if s, _ := e.send(t, "registration", "POST", "/api/v1/targets/register", `{"name":"t2","address":"127.0.0.1:22"}`); s != 400 {
		t.Errorf("registration without host key: %d, want 400", s)
	}
	if s, _ := e.send(t, "admin", "PUT", "/api/v1/settings/global_registration_keys", `{"value":false}`); s != 200 {
		t.Fatalf("setting off: %d", s)
	}
	if s := reg("registration", "t3"); s != 403 {
		t.Errorf("global key with the setting off: %d, want 403", s)
	}
	s, out := e.asUser(t, "ada", "POST", "/api/v1/apikeys", `{"name":"mine","kind":"registration"}`)
	if s != 201 || out["owner"] != "ada" {
		t.Fatalf("admin's own registration key: %d %v", s, out)
	}
	e.keys["own"] = out["key"].(string)
	if s := reg("own", "t4"); s != 201 {
		t.Errorf("admin's own key: %d, want 201", s)
	}
	// ada loses the admin role: her registration key stops; so does her
	// access key's admin right.
	if s, _ := e.send(t, "admin", "POST", "/api/v1/apply", `[{"kind":"User","name":"ada"}]`); s != 200 {
		t.Fatalf("apply: %d", s)
	}
	if s := reg("own", "t5"); s != 403 {
		t.Errorf("key of a former admin: %d, want 403", s)
	}
	if s, _ := e.send(t, "admin", "GET", "/api/v1/settings", ""); s != 403 {
		t.Errorf("former admin reads settings: %d, want 403", s)
	}
}

// discoveryEnv is a gateway with its agent listener on, so that
// GET /api/v1/autodiscovery-script answers scripts.
type discoveryEnv struct {
	st  store.Store
	srv *httptest.Server
}

func newDiscoveryEnv(t *testing.T) *discoveryEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v, err := vault.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	inv, err := inventory.New(ctx, st, v, log)
	if err != nil {
		t.Fatal(err)
	}
	al := audit.New(st, log)
	bin := filepath.Join(dir, "portcullis")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	hk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(api.Config{Inventory: inv, Store: st, Audit: al, Log: log,
		AgentAddr: func() string { return "127.0.0.1:2222" }, AgentBinary: bin, HostKey: hk})
	srv := httptest.NewTLSServer(api.HTTPS(h, api.NewKeyAuthenticator(st, al)))
	t.Cleanup(srv.Close)
	return &discoveryEnv{st: st, srv: srv}
}

// registrationKey stores k as a registration key and answers its value.
func (e *discoveryEnv) registrationKey(t *testing.T, k store.APIKey) string {
	t.Helper()
	id, value, _ := apikey.New()
	_, secret, _ := apikey.Parse(value)
	k.ID, k.Kind, k.SecretHash, k.CreatedAt = id, store.APIKeyRegistration, apikey.Hash(id, secret), time.Now()
	if err := e.st.CreateAPIKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return value
}

// script fetches the autodiscovery script with key and Host header host.
func (e *discoveryEnv) script(t *testing.T, key, host string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/autodiscovery-script", nil)
	req.Header.Set(api.APIKeyHeader, key)
	if host != "" {
		req.Host = host
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var scriptKey = regexp.MustCompile(`PORTCULLIS_REGISTRATION_KEY='([^']+)'`)

// TestAutodiscoveryKeyNoLooserThanCaller: the key an autodiscovery script
// carries is never looser than the registration key that fetched it. It
// blocks a spent key, or one narrowed to web-* from 127.0.0.0/8, buying a
// fresh key with no limits, which buys the next: a leaked key that never
// dies.
func TestAutodiscoveryKeyNoLooserThanCaller(t *testing.T) {
	e := newDiscoveryEnv(t)
	parentExpiry := time.Now().Add(time.Hour).Truncate(time.Second)
	for _, c := range []struct {
		name   string
		parent store.APIKey
		want   int
		minted store.APIKey // ExpiresAt zero: about 2 h from now
	}{
		{name: "spent", parent: store.APIKey{MaxUses: 1, Uses: 1, NamePattern: "web-*", SourceCIDRs: []string{"127.0.0.0/8"}},
			want: 403},
		{name: "narrow", parent: store.APIKey{MaxUses: 5, Uses: 2, NamePattern: "web-*", SourceCIDRs: []string{"127.0.0.0/8"},
			Environment: "staging", ExpiresAt: parentExpiry},
			want: 200, minted: store.APIKey{MaxUses: 3, NamePattern: "web-*", SourceCIDRs: []string{"127.0.0.0/8"},
				Environment: "staging", ExpiresAt: parentExpiry}},
		{name: "open", want: 200},
	} {
		resp, body := e.script(t, e.registrationKey(t, c.parent), "")
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.want)
			continue
		}
		if c.want != 200 {
			continue
		}
		m := scriptKey.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("%s: no key in the script:\n%s", c.name, body)
		}
		id, _, _ := apikey.Parse(m[1])
		got, err := e.st.GetAPIKey(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.MaxUses != c.minted.MaxUses || got.NamePattern != c.minted.NamePattern ||
			!slices.Equal(got.SourceCIDRs, c.minted.SourceCIDRs) || got.Environment != c.minted.Environment {
			t.Errorf("%s: minted max_uses=%d name_pattern=%q source_cidrs=%v environment=%q, want %d %q %v %q", c.name,
				got.MaxUses, got.NamePattern, got.SourceCIDRs, got.Environment,
				c.minted.MaxUses, c.minted.NamePattern, c.minted.SourceCIDRs, c.minted.Environment)
		}
		switch {
		case !c.minted.ExpiresAt.IsZero() && !got.ExpiresAt.Equal(c.minted.ExpiresAt):
			t.Errorf("%s: minted key expires %s, want the caller's %s", c.name, got.ExpiresAt, c.minted.ExpiresAt)
		case c.minted.ExpiresAt.IsZero() && (got.ExpiresAt.IsZero() || got.ExpiresAt.After(time.Now().Add(2*time.Hour))):
			t.Errorf("%s: minted key expires %s, want within 2 h", c.name, got.ExpiresAt)
		}
	}
}

// TestAutodiscoveryScriptHost: the Host header, which the script dials
// back to, must be a plain host name, IPv4 or bracketed IPv6 address with
// an optional numeric port. It blocks a Host such as gw.example';id;'
// breaking out of the script's quotes and running as root on every new
// host. A script also carries Cache-Control: no-store, as it holds a live
// key.
func TestAutodiscoveryScriptHost(t *testing.T) {
	e := newDiscoveryEnv(t)
	key := e.registrationKey(t, store.APIKey{})
	for _, c := range []struct {
		host string
		want int
	}{
		{"gw.example.com:8443", 200},
		{"gw.example.com", 200},
		{"10.0.0.1:8443", 200},
		{"[2001:db8::1]:8443", 200},
		{"[2001:db8::1]", 200},
		{"gw.example';id;'", 400},
		{"gw.example.com:84x", 400},
		{"gw.example.com:", 400},
		{"2001:db8::1", 400},
		{"[gw.example.com]:8443", 400},
		{"gw_x$(id)", 400},
	} {
		resp, body := e.script(t, key, c.host)
		if resp.StatusCode != c.want {
			t.Errorf("Host %q: %d %s, want %d", c.host, resp.StatusCode, body, c.want)
			continue
		}
		if c.want != 200 {
			continue
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Host %q: Cache-Control %q, want no-store", c.host, cc)
		}
		if want := "GATEWAY_HTTPS='https://" + c.host + "'\n"; !strings.Contains(body, want) {
			t.Errorf("Host %q: the script lacks %q:\n%s", c.host, want, body)
		}
	}
}
