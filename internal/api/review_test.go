package api_test

// Regression tests from the security review of the HTTPS API: each one
// failed before its fix and names the finding it guards against.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/recording"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
)

// Deleting a User must take its API keys, password hash and console
// sessions with it: re-creating a user of the same name (a new person
// reusing a login name, or an admin undoing a delete later) must not
// bring them back to life.
func TestReviewDeletedUserCredentialsRevive(t *testing.T) {
	e := newAuthzEnv(t)
	ctx := context.Background()
	if s, out := e.send(t, "admin", "POST", "/api/v1/users/nora/password", `{"password":"nora's old password"}`); s != 204 {
		t.Fatalf("set nora's password: %d %v", s, out)
	}
	if s, _ := e.send(t, "norole", "GET", "/api/v1/me", ""); s != 200 {
		t.Fatalf("nora's key before delete: %d", s)
	}
	now := time.Now()
	if err := e.st.CreateWebSession(ctx, store.WebSession{IDHash: "h", User: "nora", CSRFToken: "c",
		CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if s, out := e.send(t, "admin", "DELETE", "/api/v1/resources/user/nora", ""); s != 200 {
		t.Fatalf("delete nora: %d %v", s, out)
	}
	if s, _ := e.send(t, "norole", "GET", "/api/v1/me", ""); s != 401 {
		t.Errorf("nora's key after delete: %d, want 401", s)
	}
	if _, err := e.st.PasswordHash(ctx, "nora"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("nora's password hash survives her deletion (err %v)", err)
	}
	if _, err := e.st.GetWebSession(ctx, "h"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("nora's console session survives her deletion (err %v)", err)
	}
	// A new user called nora.
	if s, out := e.send(t, "admin", "POST", "/api/v1/apply", `[{"kind":"User","name":"nora"}]`); s != 200 {
		t.Fatalf("re-create nora: %d %v", s, out)
	}
	if s, out := e.send(t, "norole", "GET", "/api/v1/me", ""); s != 401 {
		t.Errorf("the deleted nora's API key works for the new nora: %d %v", s, out)
	}
	keys, _ := e.st.ListAPIKeys(ctx)
	for _, k := range keys {
		if k.Owner == "nora" && k.RevokedAt.IsZero() {
			t.Errorf("key %s of the deleted user nora was never revoked", k.ID)
		}
	}
}

// policy/explain lets a no-role user tell a target that exists (but that
// it may not reach) from one that does not, although GET
// /api/v1/resources/target/NAME answers both alike on purpose.
func TestReviewExplainTargetExistenceOracle(t *testing.T) {
	e := newAuthzEnv(t)
	if s, out := e.send(t, "admin", "POST", "/api/v1/apply",
		`[{"kind":"Target","name":"secret-db","address":"10.9.9.9:22"}]`); s != 200 {
		t.Fatalf("apply: %d %v", s, out)
	}
	for _, name := range []string{"secret-db", "no-such-db"} {
		if s, _ := e.send(t, "norole", "GET", "/api/v1/resources/target/"+name, ""); s != 404 {
			t.Fatalf("GET target %s as nora: %d, want 404", name, s)
		}
	}
	explain := func(target string) string {
		s, out := e.send(t, "norole", "POST", "/api/v1/policy/explain",
			fmt.Sprintf(`{"user":"nora","target":%q,"action":"shell","source":"10.1.2.3"}`, target))
		if s != 200 {
			t.Fatalf("explain %s: %d %v", target, s, out)
		}
		return strings.ReplaceAll(fmt.Sprint(out), target, "TARGET")
	}
	exists, missing := explain("secret-db"), explain("no-such-db")
	if exists != missing {
		t.Errorf("explain tells an existing, unreachable target from a missing one:\n exists:  %s\n missing: %s", exists, missing)
	}
}

// POST /api/v1/users/{me}/password runs an argon2id verification (19 MiB,
// tens of ms) of current_password on every call, with no rate limit and
// no bound on concurrency: a stolen key or session brute-forces the
// console password offline-fast, and parallel calls exhaust memory.
func TestReviewPasswordChangeNotRateLimited(t *testing.T) {
	e := newAuthzEnv(t)
	if s, out := e.send(t, "admin", "POST", "/api/v1/users/nora/password", `{"password":"nora's real password"}`); s != 204 {
		t.Fatalf("set nora's password: %d %v", s, out)
	}
	const tries = 24
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < tries; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, _ := e.send(t, "norole", "POST", "/api/v1/users/nora/password",
				fmt.Sprintf(`{"password":"a brand new password","current_password":"guess number %d"}`, i))
			mu.Lock()
			statuses[s]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if statuses[http.StatusTooManyRequests] == 0 {
		t.Errorf("%d parallel wrong current_password guesses were all verified (statuses %v): want a 429 after a few, as /ui/login does", tries, statuses)
	}
}

// A key made with another key would outlive the parent's revocation:
// whoever steals a key would mint a child first. Keys cannot make keys.
func TestReviewChildKeySurvivesParentRevocation(t *testing.T) {
	e := newAuthzEnv(t)
	if s, out := e.send(t, "victim", "POST", "/api/v1/apikeys", `{"name":"persist","kind":"access"}`); s != 403 {
		t.Fatalf("a key made a child key: %d %v", s, out)
	}
}

// registerTarget checks "does the target exist?" outside the inventory's
// lock and then applies (an upsert): concurrent registrations of one name
// all succeed, and the last one silently rewrites the address and host
// key the first one registered, which a registration must never do.
func TestReviewRegistrationRace(t *testing.T) {
	e := newAuthzEnv(t)
	const rounds, n = 20, 16
	worst := 0
	for round := 0; round < rounds && worst < 2; round++ {
		var mu sync.Mutex
		created := 0
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				s, _ := e.send(t, "registration", "POST", "/api/v1/targets/register",
					fmt.Sprintf(`{"name":"raced-%d","address":"10.0.0.%d:22","host_key":%q}`, round, i+1, testHostKey))
				if s == http.StatusCreated {
					mu.Lock()
					created++
					mu.Unlock()
				}
			}(i)
		}
		wg.Wait()
		worst = max(worst, created)
	}
	if worst != 1 {
		t.Errorf("up to %d concurrent registrations of one name with different addresses answered 201, want exactly 1 (the rest 409)", worst)
	}
}

// Any anonymous client writes one audit event per request by sending a
// malformed X-API-KEY: unauthenticated, unthrottled growth of the
// hash-chained trail (disk, write lock, noise that buries real events).
func TestReviewAnonymousAuditFlood(t *testing.T) {
	e := newAuthzEnv(t)
	ctx := context.Background()
	before, _ := e.st.ListAudit(ctx, store.AuditFilter{Type: "apikey.", Limit: 10000})
	const n = 200
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/openapi.json", nil)
		req.Header.Set(api.APIKeyHeader, "garbage")
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	after, _ := e.st.ListAudit(ctx, store.AuditFilter{Type: "apikey.", Limit: 10000})
	if added := len(after) - len(before); added >= n {
		t.Errorf("%d anonymous requests with a garbage key wrote %d audit events: want refusals throttled or aggregated", n, added)
	}
}

// newReviewEnv is newAuthzEnv's setup, keeping the recording manager so
// that a test can drive an active recording.
func newReviewEnv(t *testing.T) (*authzEnv, *recording.Manager) {
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
	auditLog := audit.New(st, log)
	h := api.New(api.Config{Inventory: inv, Store: st, Audit: auditLog, Log: log, Sessions: &fakeSessions{}, Recordings: mgr})
	admin := httptest.NewServer(api.WithLocalAdmin(h))
	srv := httptest.NewServer(api.HTTPS(h, api.NewKeyAuthenticator(st, auditLog)))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		admin.Close()
		cancel()
		<-done
		st.Close()
	})
	e := &authzEnv{srv: srv, st: st, keys: map[string]string{}}
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
	for who, body := range map[string]string{
		"admin":   `{"name":"a","kind":"access","owner":"ada"}`,
		"auditor": `{"name":"a","kind":"access","owner":"aud"}`,
	} {
		e.keys[who] = adminDo("POST", "/api/v1/apikeys", "application/json", body)["key"].(string)
	}
	return e, mgr
}

// The live view is authorized once, when the stream opens. An auditor
// whose key is revoked (or whose role is taken away, or whose console
// session is signed out) keeps watching the session for as long as it
// runs.
func TestReviewLiveWatchOutlivesRevocation(t *testing.T) {
	e, mgr := newReviewEnv(t)
	ctx := context.Background()
	rec, err := mgr.Start(ctx, recording.Meta{ID: "live-1", User: "ada", Target: "web1", Account: "svc", Action: "shell", Width: 80, Height: 24})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close(ctx)
	rec.Output([]byte("before-revoke\r\n"))

	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/sessions/live-1/watch?from=start", nil)
	req.Header.Set(api.APIKeyHeader, e.keys["auditor"])
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch: %d %s", resp.StatusCode, b)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	waitFor := func(word string, d time.Duration) bool {
		timeout := time.After(d)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return false
				}
				if strings.Contains(l, word) {
					return true
				}
			case <-timeout:
				return false
			}
		}
	}
	if !waitFor("before-revoke", 5*time.Second) {
		t.Fatal("the watcher never saw the first output")
	}
	// Take the auditor's rights away every way there is.
	audID := strings.SplitN(strings.TrimPrefix(e.keys["auditor"], "pck_"), ".", 2)[0]
	if s, out := e.send(t, "admin", "POST", "/api/v1/apikeys/"+audID+"/revoke", "{}"); s != 200 {
		t.Fatalf("revoke: %d %v", s, out)
	}
	if s, out := e.send(t, "admin", "POST", "/api/v1/apply", `[{"kind":"User","name":"aud"}]`); s != 200 {
		t.Fatalf("demote: %d %v", s, out)
	}
	if s, _ := e.send(t, "auditor", "GET", "/api/v1/me", ""); s != 401 {
		t.Fatalf("revoked key: %d", s)
	}
	rec.Output([]byte("after-revoke-secret\r\n"))
	if waitFor("after-revoke-secret", 3*time.Second) {
		t.Errorf("a watch opened with a key that is now revoked (and whose owner lost the auditor role) still streams new output")
	}
}
