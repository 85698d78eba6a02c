package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/web"
)

// testAssets stands for a built console.
var testAssets = fstest.MapFS{
	"index.html":              {Data: []byte("<!doctype html><title>Portcullis</title><script src=\"assets/app-1a2b.js\"></script>")},
	"assets/app-1a2b.js":      {Data: []byte("console.log('hi')")},
	"assets/app-1a2b.css":     {Data: []byte("body{}")},
	"assets/fonts/f-9z.woff2": {Data: []byte("wOF2")},
}

const (
	alicePassword = "correct horse battery staple"
	idle          = 30 * time.Minute
	maxAge        = 12 * time.Hour
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a console over a real store behind a TLS test server. The server
// also serves /api/v1/whoami behind api.HTTPS with the console's
// authenticator, answering the principal it got and the CSRF token in its
// context, to test the authenticator as the gateway wires it.
type env struct {
	srv     *httptest.Server
	st      *sqlite.Store
	clock   *clock
	console *web.Console

	mu    sync.Mutex
	users map[string]bool
	// dirPassword stands for the directory; nil: nobody is in it.
	dirPassword func(ctx context.Context, user, pw string) (bool, error)
	// slept records the console's sign-in delays, which take no time here.
	slept []time.Duration
}

// sleeps returns the sign-in delays so far and forgets them.
func (e *env) sleeps() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.slept
	e.slept = nil
	return s
}

// setDirectory makes f answer the console's directory sign-ins.
func (e *env) setDirectory(f func(ctx context.Context, user, pw string) (bool, error)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dirPassword = f
}

type whoami struct {
	Name string `json:"name"`
	Via  string `json:"via"`
	CSRF string `json:"csrf"`
}

func newEnv(t *testing.T, assets *fstest.MapFS) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{st: st, clock: &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)},
		users: map[string]bool{"alice": true, "nopass": true, "damaged": true}}
	hash, err := password.Hash(alicePassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetPassword(ctx, "alice", hash, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.SetPassword(ctx, "damaged", "$argon2id$v=19$garbage", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	cfg := web.Config{
		Store: st,
		Users: func(_ context.Context, name string) (bool, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.users[name], nil
		},
		Roles: func(_ context.Context, name string) ([]string, error) { return []string{"admin"}, nil },
		DirectoryPassword: func(ctx context.Context, user, pw string) (bool, error) {
			e.mu.Lock()
			f := e.dirPassword
			e.mu.Unlock()
			if f == nil {
				return false, nil
			}
			return f(ctx, user, pw)
		},
		Audit: audit.New(st, log),
		Log:   log,
		Now:   e.clock.Now,
		Sleep: func(_ context.Context, d time.Duration) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.slept = append(e.slept, d)
		},
	}
	if assets != nil {
		cfg.Assets = *assets
	}
	if e.console, err = web.New(cfg); err != nil {
		t.Fatal(err)
	}
	whoamiH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := api.PrincipalFrom(r.Context())
		if !ok {
			api.WriteError(w, http.StatusUnauthorized, "", "not authenticated")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(whoami{Name: p.Name, Via: p.Via, CSRF: api.CSRFToken(r.Context())})
	})
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", api.HTTPS(whoamiH, e.console.Authenticator()))
	mux.Handle("/", e.console.Handler())
	e.srv = httptest.NewTLSServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) deleteUser(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.users, name)
}

// browser is one cookie jar talking from one loopback source address.
type browser struct {
	t   *testing.T
	e   *env
	c   *http.Client
	jar *cookiejar.Jar
}

// newBrowser returns a client whose connections come from source (a
// loopback address, for the per-source rate limit); "" for 127.0.0.1.
func (e *env) newBrowser(t *testing.T, source string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	if source != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		tr.DialContext = d.DialContext
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, e: e, jar: jar, c: &http.Client{
		Transport: tr,
		Jar:       jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// do sends a request and returns the response with its body read.
func (b *browser) do(method, path string, header http.Header, body []byte) (*http.Response, []byte) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, data
}

// loginCSRF fetches the login CSRF token (and its cookie).
func (b *browser) loginCSRF() string {
	b.t.Helper()
	resp, body := b.do("GET", "/ui/login-csrf", nil, nil)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("GET /ui/login-csrf: %s %s", resp.Status, body)
	}
	var r web.LoginCSRFResponse
	if err := json.Unmarshal(body, &r); err != nil || r.CSRFToken == "" {
		b.t.Fatalf("GET /ui/login-csrf body %s: %v", body, err)
	}
	return r.CSRFToken
}

func loginBody(user, pw string) []byte {
	body, _ := json.Marshal(map[string]string{"user": user, "password": pw})
	return body
}

func jsonHeader(csrf string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	if csrf != "" {
		h.Set("X-CSRF-Token", csrf)
	}
	return h
}

// login signs in and returns the response and its body.
func (b *browser) login(user, pw string) (*http.Response, []byte) {
	b.t.Helper()
	return b.do("POST", "/ui/login", jsonHeader(b.loginCSRF()), loginBody(user, pw))
}

// mustLogin signs alice in and returns the session's CSRF token.
func (b *browser) mustLogin() string {
	b.t.Helper()
	resp, body := b.login("alice", alicePassword)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("login: %s %s", resp.Status, body)
	}
	var r web.LoginResponse
	if err := json.Unmarshal(body, &r); err != nil {
		b.t.Fatal(err)
	}
	if r.Name != "alice" || r.CSRFToken == "" || len(r.Roles) != 1 {
		b.t.Fatalf("login answer %s", body)
	}
	return r.CSRFToken
}

// sessionID returns the session cookie the jar holds, "" if none.
func (b *browser) sessionID() string {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == "__Host-pc_session" {
			return c.Value
		}
	}
	return ""
}

// whoami calls the API as the browser.
func (b *browser) whoami(method string, header http.Header) (int, whoami, []byte) {
	b.t.Helper()
	resp, body := b.do(method, "/api/v1/whoami", header, nil)
	var w whoami
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &w); err != nil {
			b.t.Fatal(err)
		}
	}
	return resp.StatusCode, w, body
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var r api.ErrorResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return r.Error.Code
}

// checkSecurityHeaders fails unless resp carries the console's headers.
func checkSecurityHeaders(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; " +
			"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
		"X-Content-Type-Options": "nosniff",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
	if !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("%s: Strict-Transport-Security = %q", what, resp.Header.Get("Strict-Transport-Security"))
	}
}

func TestStatic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	b := e.newBrowser(t, "")
	tests := []struct {
		method, path string
		status       int
		ctype        string // prefix
		cache        string
		location     string
		body         string // substring
	}{
		{"GET", "/", http.StatusFound, "", "", "/ui/", ""},
		{"GET", "/ui", http.StatusFound, "", "", "/ui/", ""},
		{"GET", "/ui/", http.StatusOK, "text/html; charset=utf-8", "no-cache", "", "<title>Portcullis</title>"},
		{"HEAD", "/ui/", http.StatusOK, "text/html", "no-cache", "", ""},
		{"GET", "/ui/assets/app-1a2b.js", http.StatusOK, "text/javascript", "public, max-age=31536000, immutable", "", "console.log"},
		{"GET", "/ui/assets/app-1a2b.css", http.StatusOK, "text/css", "public, max-age=31536000, immutable", "", "body{}"},
		{"GET", "/ui/assets/fonts/f-9z.woff2", http.StatusOK, "font/woff2", "public, max-age=31536000, immutable", "", ""},
		{"GET", "/ui/assets/", http.StatusNotFound, "application/json", "", "", `"not_found"`},
		{"GET", "/ui/assets/fonts", http.StatusNotFound, "application/json", "", "", `"not_found"`},
		{"GET", "/ui/assets/nope.js", http.StatusNotFound, "application/json", "", "", `"not_found"`},
		{"GET", "/ui/index.html", http.StatusNotFound, "application/json", "", "", ""},
		{"GET", "/ui/login", http.StatusMethodNotAllowed, "application/json", "", "", `"method_not_allowed"`},
		{"POST", "/ui/", http.StatusMethodNotAllowed, "application/json", "", "", `"method_not_allowed"`},
		{"GET", "/elsewhere", http.StatusNotFound, "application/json", "", "", `"not_found"`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := b.do(tt.method, tt.path, nil, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %s, want %d; body %s", resp.Status, tt.status, body)
			}
			if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, tt.ctype) {
				t.Errorf("Content-Type %q, want %q", got, tt.ctype)
			}
			if tt.cache != "" && resp.Header.Get("Cache-Control") != tt.cache {
				t.Errorf("Cache-Control %q, want %q", resp.Header.Get("Cache-Control"), tt.cache)
			}
			if got := resp.Header.Get("Location"); got != tt.location {
				t.Errorf("Location %q, want %q", got, tt.location)
			}
			if !strings.Contains(string(body), tt.body) {
				t.Errorf("body %q does not contain %q", body, tt.body)
			}
			checkSecurityHeaders(t, tt.method+" "+tt.path, resp)
		})
	}
}

func TestIndexSetsLoginCSRFCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	b := e.newBrowser(t, "")
	resp, _ := b.do("GET", "/ui/", nil, nil)
	var set string
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "__Host-pc_csrf=") {
			set = c
		}
	}
	if set == "" {
		t.Fatalf("GET /ui/ set no login CSRF cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	for _, attr := range []string{"Path=/", "Secure", "SameSite=Strict"} {
		if !strings.Contains(set, attr) {
			t.Errorf("login CSRF cookie %q lacks %s", set, attr)
		}
	}
	// The page's script reads it, so it is not HttpOnly; and it is the
	// token /ui/login-csrf hands out, not a second one.
	if strings.Contains(set, "HttpOnly") {
		t.Errorf("login CSRF cookie %q is HttpOnly", set)
	}
	tok := b.loginCSRF()
	if !strings.HasPrefix(set, "__Host-pc_csrf="+tok+";") {
		t.Errorf("GET /ui/login-csrf = %q, cookie %q", tok, set)
	}
}

func TestAssetsNotBuilt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &fstest.MapFS{"README": {Data: []byte("x")}})
	b := e.newBrowser(t, "")
	for _, p := range []string{"/ui/", "/ui/assets/app.js"} {
		resp, body := b.do("GET", p, nil, nil)
		if resp.StatusCode != http.StatusServiceUnavailable || string(body) != "web console assets are not built: run make\n" {
			t.Errorf("GET %s: %s %q", p, resp.Status, body)
		}
		checkSecurityHeaders(t, p, resp)
	}
}

// TestEmbedded checks that what `go build` embeds is a working console:
// the page and every asset it names are served, and they are committed
// (not a local build a clean clone would lack).
func TestEmbedded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	b := e.newBrowser(t, "")
	resp, body := b.do("GET", "/ui/", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/ with the embedded assets: %s %q", resp.Status, body)
	}
	refs := regexp.MustCompile(`(?:href|src)="(assets/[^"]+)"`).FindAllStringSubmatch(string(body), -1)
	if len(refs) < 2 {
		t.Fatalf("index.html names %d assets, want a script and a stylesheet:\n%s", len(refs), body)
	}
	for _, m := range refs {
		if resp, _ := b.do("GET", "/ui/"+m[1], nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /ui/%s: %s", m[1], resp.Status)
		}
	}
	out, err := exec.Command("git", "ls-files", "--error-unmatch", "dist/index.html").CombinedOutput()
	switch {
	case errors.Is(err, exec.ErrNotFound):
		t.Log("no git here: cannot check that the build is committed")
	case err != nil && strings.Contains(string(out), "not a git repository"):
		t.Log("not a git checkout: cannot check that the build is committed")
	case err != nil:
		t.Errorf("internal/web/dist/index.html is not committed, so a clean clone's go build has no console: %s", out)
	}
}

func TestNoOpenRedirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	b := e.newBrowser(t, "")
	paths := []string{"/", "/ui", "//evil.example/", "//evil.example/ui", "/%2F%2Fevil.example",
		"/ui?next=https://evil.example/", "/?next=//evil.example", "/%5Cevil.example", "/ui/..//evil.example",
		"/ui/assets/../../evil"}
	check := func(how, p string, status int, loc string) {
		t.Helper()
		if status/100 == 3 && loc != "/ui/" && (!strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") ||
			strings.HasPrefix(loc, "/\\")) {
			t.Errorf("%s GET %s: %d to %q, which leaves the gateway", how, p, status, loc)
		}
	}
	for _, p := range paths {
		// Through a ServeMux, as the gateway mounts it.
		resp, _ := b.do("GET", p, nil, nil)
		check("mounted", p, resp.StatusCode, resp.Header.Get("Location"))
		// And bare, without the mux's path cleaning.
		req := httptest.NewRequest("GET", "https://gw.example"+p, nil)
		rec := httptest.NewRecorder()
		e.console.Handler().ServeHTTP(rec, req)
		check("bare", p, rec.Code, rec.Header().Get("Location"))
	}
}

// TestAssetTraversal sends unclean asset paths straight to the handler
// (a ServeMux in front would clean them first).
func TestAssetTraversal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	for _, p := range []string{"/ui/assets/../index.html", "/ui/assets/./app-1a2b.js", "/ui/assets//app-1a2b.js",
		"/ui/assets/fonts/../../index.html", "/ui/assets/fonts/"} {
		req := httptest.NewRequest("GET", "https://gw.example/", nil)
		req.URL.Path = p
		rec := httptest.NewRecorder()
		e.console.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, rec.Code)
		}
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	b := e.newBrowser(t, "")
	csrf := b.loginCSRF()
	tests := []struct {
		name   string
		header http.Header
		body   []byte
		status int
		code   string
	}{
		{"success", jsonHeader(csrf), loginBody("alice", alicePassword), http.StatusOK, ""},
		{"wrong password", jsonHeader(csrf), loginBody("alice", "nope"), http.StatusUnauthorized, "unauthorized"},
		{"unknown user", jsonHeader(csrf), loginBody("mallory", alicePassword), http.StatusUnauthorized, "unauthorized"},
		{"user without password", jsonHeader(csrf), loginBody("nopass", alicePassword), http.StatusUnauthorized, "unauthorized"},
		{"damaged hash", jsonHeader(csrf), loginBody("damaged", alicePassword), http.StatusUnauthorized, "unauthorized"},
		{"no CSRF header", jsonHeader(""), loginBody("alice", alicePassword), http.StatusForbidden, "csrf"},
		{"wrong CSRF header", jsonHeader(csrf[1:] + "A"), loginBody("alice", alicePassword), http.StatusForbidden, "csrf"},
		{"form post", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "X-Csrf-Token": {csrf}},
			[]byte("user=alice&password=x"), http.StatusBadRequest, "bad_request"},
		{"cross-site", func() http.Header {
			h := jsonHeader(csrf)
			h.Set("Sec-Fetch-Site", "cross-site")
			return h
		}(), loginBody("alice", alicePassword), http.StatusForbidden, "csrf"},
		{"foreign origin", func() http.Header {
			h := jsonHeader(csrf)
			h.Set("Origin", "https://evil.example")
			return h
		}(), loginBody("alice", alicePassword), http.StatusForbidden, "csrf"},
		{"unknown field", jsonHeader(csrf), []byte(`{"user":"alice","password":"x","admin":true}`), http.StatusBadRequest, "bad_request"},
		{"two objects", jsonHeader(csrf), []byte(`{"user":"alice","password":"x"}{}`), http.StatusBadRequest, "bad_request"},
		{"empty password", jsonHeader(csrf), loginBody("alice", ""), http.StatusBadRequest, "bad_request"},
		{"too large", jsonHeader(csrf), loginBody("alice", strings.Repeat("x", 5000)), http.StatusRequestEntityTooLarge, "too_large"},
	}
	bodies := map[int]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := b.do("POST", "/ui/login", tt.header, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %s, want %d; body %s", resp.Status, tt.status, body)
			}
			checkSecurityHeaders(t, tt.name, resp)
			if tt.code != "" {
				if got := errorCode(t, body); got != tt.code {
					t.Errorf("code %q, want %q", got, tt.code)
				}
			}
			if tt.status == http.StatusUnauthorized {
				// Unknown user, no password and wrong password must
				// read the same.
				if prev, ok := bodies[tt.status]; ok && prev != string(body) {
					t.Errorf("answer %s differs from another refusal's %s", body, prev)
				}
				bodies[tt.status] = string(body)
			}
		})
	}
}

func TestLoginAudit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	b := e.newBrowser(t, "")
	if resp, body := b.login("alice", "wrong-password-1"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %s %s", resp.Status, body)
	}
	csrf := b.mustLogin()
	if resp, body := b.do("POST", "/ui/logout", http.Header{"X-Csrf-Token": {csrf}}, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %s %s", resp.Status, body)
	}
	evs, err := e.st.ListAudit(context.Background(), store.AuditFilter{Type: "console."})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type+"/"+ev.Outcome+"/"+ev.User)
		if ev.Source == "" {
			t.Errorf("%s has no source", ev.Type)
		}
		all, _ := json.Marshal(ev)
		if strings.Contains(string(all), "wrong-password-1") || strings.Contains(string(all), alicePassword) {
			t.Errorf("audit event holds a password: %s", all)
		}
	}
	want := "console.login_failure/deny/alice console.login/success/alice console.logout/success/alice"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("audit events %q, want %q", got, want)
	}
}

func TestSessionCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	b := e.newBrowser(t, "")
	resp, body := b.login("alice", alicePassword)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %s %s", resp.Status, body)
	}
	var set string
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "__Host-pc_session=") {
			set = c
		}
	}
	attrs := map[string]string{}
	for i, a := range strings.Split(set, "; ") {
		if i > 0 {
			k, v, _ := strings.Cut(a, "=")
			attrs[k] = v
		}
	}
	want := map[string]string{"Path": "/", "Secure": "", "HttpOnly": "", "SameSite": "Strict"}
	for k, v := range want {
		if got, ok := attrs[k]; !ok || got != v {
			t.Errorf("session cookie %q: %s=%q, want %q", set, k, got, v)
		}
	}
	for _, a := range []string{"Domain", "Max-Age", "Expires"} {
		if _, ok := attrs[a]; ok {
			t.Errorf("session cookie %q has %s", set, a)
		}
	}
	id := b.sessionID()
	if len(id) != 43 {
		t.Fatalf("session id %q: want 32 bytes base64url", id)
	}
	// Only the hash is stored.
	if _, err := e.st.GetWebSession(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the session id itself is a store key (err %v)", err)
	}
}

func TestLoginRotatesSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	b := e.newBrowser(t, "")
	b.mustLogin()
	first := b.sessionID()
	b.mustLogin()
	second := b.sessionID()
	if first == second || second == "" {
		t.Fatalf("second login kept session id %q", first)
	}
	// The replaced session is gone: its cookie opens nothing.
	old := e.newBrowser(t, "")
	u, _ := url.Parse(e.srv.URL)
	old.jar.SetCookies(u, []*http.Cookie{{Name: "__Host-pc_session", Value: first, Path: "/", Secure: true}})
	if status, _, body := old.whoami("GET", nil); status != http.StatusUnauthorized {
		t.Errorf("replaced session: %d %s", status, body)
	}

	// A value planted before login (session fixation) is never adopted.
	fixed := e.newBrowser(t, "")
	planted := strings.Repeat("A", 43)
	fixed.jar.SetCookies(u, []*http.Cookie{{Name: "__Host-pc_session", Value: planted, Path: "/", Secure: true}})
	fixed.mustLogin()
	if got := fixed.sessionID(); got == planted {
		t.Errorf("login adopted the planted session id")
	}
}

func TestAuthenticator(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	b := e.newBrowser(t, "")
	csrf := b.mustLogin()
	anon := e.newBrowser(t, "")
	garbage := e.newBrowser(t, "")
	u, _ := url.Parse(e.srv.URL)
	garbage.jar.SetCookies(u, []*http.Cookie{{Name: "__Host-pc_session", Value: "not-a-session", Path: "/", Secure: true}})
	with := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name   string
		b      *browser
		method string
		header http.Header
		status int
		code   string
	}{
		{"no cookie", anon, "GET", nil, http.StatusUnauthorized, "unauthorized"},
		{"garbage cookie", garbage, "GET", nil, http.StatusUnauthorized, "unauthorized"},
		{"GET", b, "GET", nil, http.StatusOK, ""},
		{"GET same-origin", b, "GET", with("Sec-Fetch-Site", "same-origin"), http.StatusOK, ""},
		{"GET same-site", b, "GET", with("Sec-Fetch-Site", "same-site"), http.StatusForbidden, "csrf"},
		{"GET cross-site", b, "GET", with("Sec-Fetch-Site", "cross-site"), http.StatusForbidden, "csrf"},
		{"POST without token", b, "POST", nil, http.StatusForbidden, "csrf"},
		{"POST wrong token", b, "POST", with("X-CSRF-Token", strings.Repeat("B", 43)), http.StatusForbidden, "csrf"},
		{"DELETE without token", b, "DELETE", nil, http.StatusForbidden, "csrf"},
		{"POST with token", b, "POST", with("X-CSRF-Token", csrf), http.StatusOK, ""},
		{"POST foreign origin", b, "POST", with("X-CSRF-Token", csrf, "Origin", "https://evil.example"), http.StatusForbidden, "csrf"},
		{"POST own origin", b, "POST", with("X-CSRF-Token", csrf, "Origin", e.srv.URL), http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, who, body := tt.b.whoami(tt.method, tt.header)
			if status != tt.status {
				t.Fatalf("status %d, want %d; body %s", status, tt.status, body)
			}
			if tt.code != "" {
				if got := errorCode(t, body); got != tt.code {
					t.Errorf("code %q, want %q", got, tt.code)
				}
			}
			if status == http.StatusOK && (who.Name != "alice" || who.Via != "console" || who.CSRF != csrf) {
				t.Errorf("principal %+v, want alice via console with the session's token", who)
			}
		})
	}
}

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, &testAssets)
	stored := func(b *browser) (store.WebSession, bool) {
		t.Helper()
		sum := sha256Hex(b.sessionID())
		s, err := e.st.GetWebSession(ctx, sum)
		if errors.Is(err, store.ErrNotFound) {
			return s, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return s, true
	}

	t.Run("idle", func(t *testing.T) {
		b := e.newBrowser(t, "")
		b.mustLogin()
		s0, _ := stored(b)
		// Used within a minute: LastSeen is not rewritten.
		e.clock.Advance(30 * time.Second)
		if status, _, body := b.whoami("GET", nil); status != http.StatusOK {
			t.Fatalf("after 30s: %d %s", status, body)
		}
		if s, _ := stored(b); !s.LastSeen.Equal(s0.LastSeen) {
			t.Errorf("LastSeen moved to %v after 30 s", s.LastSeen)
		}
		// Used after two: it is.
		e.clock.Advance(90 * time.Second)
		if status, _, body := b.whoami("GET", nil); status != http.StatusOK {
			t.Fatalf("after 2m: %d %s", status, body)
		}
		if s, _ := stored(b); !s.LastSeen.Equal(e.clock.Now()) {
			t.Errorf("LastSeen %v, want %v", s.LastSeen, e.clock.Now())
		}
		e.clock.Advance(idle - time.Second)
		if status, _, body := b.whoami("GET", nil); status != http.StatusOK {
			t.Fatalf("just before the idle timeout: %d %s", status, body)
		}
		e.clock.Advance(idle)
		if status, _, _ := b.whoami("GET", nil); status != http.StatusUnauthorized {
			t.Fatalf("after the idle timeout: %d", status)
		}
		if _, ok := stored(b); ok {
			t.Error("idle session still stored")
		}
	})

	t.Run("max age", func(t *testing.T) {
		b := e.newBrowser(t, "")
		b.mustLogin()
		for used := time.Duration(0); used < maxAge-20*time.Minute; used += 20 * time.Minute {
			e.clock.Advance(20 * time.Minute)
			if status, _, body := b.whoami("GET", nil); status != http.StatusOK {
				t.Fatalf("after %v of use: %d %s", used, status, body)
			}
		}
		e.clock.Advance(20 * time.Minute)
		if status, _, _ := b.whoami("GET", nil); status != http.StatusUnauthorized {
			t.Fatalf("past the maximum age: %d", status)
		}
		if _, ok := stored(b); ok {
			t.Error("session past its maximum age still stored")
		}
	})

	t.Run("Run sweeps", func(t *testing.T) {
		b := e.newBrowser(t, "")
		b.mustLogin()
		e.clock.Advance(maxAge + time.Second)
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { e.console.Run(ctx); close(done) }()
		for {
			if _, ok := stored(b); !ok {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
	})
}

func TestDeletedUserSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	b := e.newBrowser(t, "")
	b.mustLogin()
	if status, _, body := b.whoami("GET", nil); status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	e.deleteUser("alice")
	if status, _, body := b.whoami("GET", nil); status != http.StatusUnauthorized {
		t.Fatalf("session of a deleted user: %d %s", status, body)
	}
	if _, err := e.st.GetWebSession(context.Background(), sha256Hex(b.sessionID())); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session of a deleted user still stored (err %v)", err)
	}
	if resp, body := b.login("alice", alicePassword); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("login of a deleted user with a stored password: %s %s", resp.Status, body)
	}
}

func TestLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	b := e.newBrowser(t, "")
	csrf := b.mustLogin()
	id := b.sessionID()
	if resp, body := b.do("POST", "/ui/logout", nil, nil); resp.StatusCode != http.StatusForbidden || errorCode(t, body) != "csrf" {
		t.Fatalf("logout without CSRF token: %s %s", resp.Status, body)
	}
	if status, _, _ := b.whoami("GET", nil); status != http.StatusOK {
		t.Fatalf("a refused logout ended the session: %d", status)
	}
	resp, body := b.do("POST", "/ui/logout", http.Header{"X-Csrf-Token": {csrf}}, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %s %s", resp.Status, body)
	}
	checkSecurityHeaders(t, "logout", resp)
	if got := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(got, "__Host-pc_session=;") || !strings.Contains(got, "Max-Age=0") {
		t.Errorf("logout Set-Cookie %q does not clear the session cookie", got)
	}
	if _, err := e.st.GetWebSession(context.Background(), sha256Hex(id)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("logged-out session still stored (err %v)", err)
	}
	// The old cookie, replayed, opens nothing; a second logout is a no-op.
	replay := e.newBrowser(t, "")
	u, _ := url.Parse(e.srv.URL)
	replay.jar.SetCookies(u, []*http.Cookie{{Name: "__Host-pc_session", Value: id, Path: "/", Secure: true}})
	if status, _, _ := replay.whoami("GET", nil); status != http.StatusUnauthorized {
		t.Errorf("replayed cookie after logout: %d", status)
	}
	if resp, _ := replay.do("POST", "/ui/logout", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("logout of a dead session: %s", resp.Status)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)

	t.Run("per user and source", func(t *testing.T) {
		// Five failures from one address lock the name out from that
		// address, the right password included...
		stranger := e.newBrowser(t, "127.0.0.2")
		for i := range 5 {
			if resp, body := stranger.login("alice", "wrong"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("failure %d: %s %s", i+1, resp.Status, body)
			}
		}
		if len(e.sleeps()) != 0 {
			t.Fatal("sign-ins slowed before the user's budget was spent")
		}
		resp, body := stranger.login("alice", alicePassword)
		if resp.StatusCode != http.StatusTooManyRequests || errorCode(t, body) != "too_many_requests" {
			t.Fatalf("sixth try from the same address: %s %s", resp.Status, body)
		}
		if got := resp.Header.Get("Retry-After"); got != "10" {
			t.Errorf("Retry-After %q, want 10", got)
		}
		// ... but not from the user's own: a stranger cannot lock alice
		// out. Her sign-in is slowed instead, since her name is under
		// attack.
		own := e.newBrowser(t, "127.0.0.3")
		if resp, body := own.login("alice", alicePassword); resp.StatusCode != http.StatusOK {
			t.Fatalf("alice from her own address after a stranger's failures: %s %s", resp.Status, body)
		}
		if s := e.sleeps(); len(s) != 1 || s[0] <= 0 || s[0] > 3*time.Second {
			t.Fatalf("sign-in delays %v, want one of at most 3s", s)
		}
		// The stranger moving to more addresses is slowed on each, and
		// locked out of each after five.
		for i := range 5 {
			if resp, body := e.newBrowser(t, "127.0.0.7").login("alice", "wrong"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("failure %d from a second address: %s %s", i+1, resp.Status, body)
			}
		}
		if s := e.sleeps(); len(s) != 5 {
			t.Fatalf("sign-in delays %v, want one per attempt", s)
		}
		if resp, _ := e.newBrowser(t, "127.0.0.7").login("alice", alicePassword); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("sixth try from the second address: %s", resp.Status)
		}
		// Another name is not affected.
		if resp, body := own.login("mallory", "x"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("other name: %s %s", resp.Status, body)
		}
		e.sleeps()
		// One more attempt every 10 s.
		e.clock.Advance(10 * time.Second)
		if resp, body := stranger.login("alice", alicePassword); resp.StatusCode != http.StatusOK {
			t.Fatalf("after 10 s: %s %s", resp.Status, body)
		}
	})

	t.Run("per source", func(t *testing.T) {
		b := e.newBrowser(t, "127.0.0.4")
		for i := range 5 {
			if resp, body := b.login("user"+string(rune('a'+i)), "wrong"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("failure %d: %s %s", i+1, resp.Status, body)
			}
		}
		if resp, body := b.login("alice", alicePassword); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("sixth try from the address: %s %s", resp.Status, body)
		}
		if resp, body := e.newBrowser(t, "127.0.0.5").login("alice", alicePassword); resp.StatusCode != http.StatusOK {
			t.Fatalf("from another address: %s %s", resp.Status, body)
		}
	})

	t.Run("successes are free", func(t *testing.T) {
		b := e.newBrowser(t, "127.0.0.6")
		for i := range 10 {
			if resp, body := b.login("alice", alicePassword); resp.StatusCode != http.StatusOK {
				t.Fatalf("login %d: %s %s", i+1, resp.Status, body)
			}
		}
	})

	t.Run("lockout audited", func(t *testing.T) {
		evs, err := e.st.ListAudit(context.Background(), store.AuditFilter{Type: web.EventLoginFailure})
		if err != nil {
			t.Fatal(err)
		}
		limits := map[string]bool{}
		for _, ev := range evs {
			if ev.Detail["reason"] == "rate_limited" {
				limits[ev.Detail["limit"].(string)] = true
			}
		}
		if !limits["user"] || !limits["source"] || !limits["user_source"] {
			t.Errorf("lockouts audited for %v, want user (slowed), user_source and source", limits)
		}
	})
}

// sha256Hex is how the store keys a session id.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
