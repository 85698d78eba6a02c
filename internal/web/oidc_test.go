package web_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/pquerna/otp/totp"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/sso"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
	"github.com/portcullis/portcullis/internal/web"
)

// ssoEnv is a console with single sign-on against a mockoidc provider in
// the test process. The provider's token answers pass through tamper,
// which may rewrite the ID token to play a provider (or an attacker) that
// gets something wrong.
type ssoEnv struct {
	*env
	op *mockoidc.MockOIDC

	mu     sync.Mutex
	tamper func(claims jwt.MapClaims) (rawToken string, replace bool)
	// links maps "issuer subject" to the User it signs in as.
	links map[string]string
	// mfaRequired names users who must present a code.
	mfaRequired map[string]bool
}

// newSSOEnv starts the provider and the console; configure, if not nil,
// may change the console's configuration first.
func newSSOEnv(t *testing.T, configure func(st *sqlite.Store, cfg *web.Config)) *ssoEnv {
	t.Helper()
	ctx := context.Background()
	op, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	se := &ssoEnv{op: op, links: map[string]string{}, mfaRequired: map[string]bool{}}
	if err := op.AddMiddleware(se.tamperTokens); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Shutdown() })

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// mockoidc stamps tokens with the real clock, so the console's is the
	// real one too (nothing here waits on it).
	e := &env{st: st, clock: &clock{t: time.Now()}, users: map[string]bool{"alice": true, "bob": true}}
	se.env = e
	mux := http.NewServeMux()
	e.srv = httptest.NewUnstartedServer(mux)
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)

	se.links[op.Issuer()+" sub-alice"] = "alice"
	se.links[op.Issuer()+" sub-bob"] = "bob"
	se.mfaRequired["bob"] = true
	prov, err := sso.New(sso.Config{Issuer: op.Issuer(), ClientID: op.ClientID, ClientSecret: op.ClientSecret,
		RedirectURL: e.srv.URL + "/ui/oidc/callback", Timeout: 5 * time.Second})
	if err != nil {
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
		RequireMFA: func(_ context.Context, name string) (bool, error) {
			se.mu.Lock()
			defer se.mu.Unlock()
			return se.mfaRequired[name], nil
		},
		SSO: prov,
		SSOUser: func(_ context.Context, id sso.Identity) (string, error) {
			se.mu.Lock()
			defer se.mu.Unlock()
			if name, ok := se.links[id.Issuer+" "+id.Subject]; ok {
				return name, nil
			}
			return "", fmt.Errorf("%s %s: %w", id.Issuer, id.Subject, sso.ErrNoUser)
		},
		Audit:  audit.New(st, log),
		Log:    log,
		Assets: testAssets,
	}
	if configure != nil {
		configure(st, &cfg)
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
		_ = json.NewEncoder(w).Encode(whoami{Name: p.Name, Via: p.Via})
	})
	mux.Handle("/api/v1/", api.HTTPS(whoamiH, e.console.Authenticator()))
	mux.Handle("/", e.console.Handler())
	return se
}

// setTamper makes the provider's token answers carry what f returns.
func (se *ssoEnv) setTamper(f func(claims jwt.MapClaims) (string, bool)) {
	se.mu.Lock()
	defer se.mu.Unlock()
	se.tamper = f
}

// tamperTokens is mockoidc middleware: it lets the provider answer the
// token request, then rewrites the ID token with tamper.
func (se *ssoEnv) tamperTokens(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		se.mu.Lock()
		f := se.tamper
		se.mu.Unlock()
		if f == nil || r.URL.Path != mockoidc.TokenEndpoint {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["id_token"] == nil {
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		parts := strings.Split(body["id_token"].(string), ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		claims := jwt.MapClaims{}
		_ = json.Unmarshal(payload, &claims)
		if raw, ok := f(claims); ok {
			body["id_token"] = raw
		} else {
			signed, err := se.op.Keypair.SignJWT(claims)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			body["id_token"] = signed
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	})
}

// queue makes the provider's next sign-in the account sub with email.
func (se *ssoEnv) queue(sub, email, username string) {
	se.op.QueueUser(&mockoidc.MockUser{Subject: sub, Email: email, EmailVerified: true,
		PreferredUsername: username, Groups: []string{"ops"}})
}

// startSSO follows GET /ui/oidc/login and the provider's authorize
// endpoint, and returns the callback path (with code and state) the
// provider sent the browser to, without following it.
func (b *browser) startSSO() string {
	b.t.Helper()
	resp, body := b.do("GET", "/ui/oidc/login", nil, nil)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("GET /ui/oidc/login: %s %s", resp.Status, body)
	}
	authURL := resp.Header.Get("Location")
	if frag := fragment(authURL); frag != "" {
		b.t.Fatalf("GET /ui/oidc/login sent the browser to %s", authURL)
	}
	u, err := url.Parse(authURL)
	if err != nil {
		b.t.Fatal(err)
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" {
		b.t.Fatalf("authorization request lacks PKCE, state or nonce: %s", authURL)
	}
	op := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	presp, err := op.Get(authURL)
	if err != nil {
		b.t.Fatal(err)
	}
	presp.Body.Close()
	cb, err := url.Parse(presp.Header.Get("Location"))
	if err != nil || presp.StatusCode != http.StatusFound || cb.Path != "/ui/oidc/callback" {
		b.t.Fatalf("provider authorize answered %s to %q", presp.Status, presp.Header.Get("Location"))
	}
	return cb.RequestURI()
}

// finishSSO follows the callback and returns where the console sent the
// browser.
func (b *browser) finishSSO(callback string) string {
	b.t.Helper()
	resp, body := b.do("GET", callback, nil, nil)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("GET %s: %s %s", callback, resp.Status, body)
	}
	return resp.Header.Get("Location")
}

func fragment(loc string) string {
	if i := strings.IndexByte(loc, '#'); i >= 0 {
		return loc[i+1:]
	}
	return ""
}

// TestSSOLogin runs the whole flow against the provider, with ID tokens a
// faulty or hostile provider might send.
func TestSSOLogin(t *testing.T) {
	t.Parallel()
	se := newSSOEnv(t, nil)
	resign := func(f func(jwt.MapClaims)) func(jwt.MapClaims) (string, bool) {
		return func(c jwt.MapClaims) (string, bool) { f(c); return "", false }
	}
	tests := []struct {
		name   string
		sub    string
		email  string
		tamper func(jwt.MapClaims) (string, bool)
		want   string // the redirect after the callback
		user   string // signed in as, when want is /ui/
	}{
		{name: "success", sub: "sub-alice", email: "alice@example.com", want: "/ui/", user: "alice"},
		{name: "wrong issuer", sub: "sub-alice", email: "alice@example.com",
			tamper: resign(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), want: "/ui/#sso_error=rejected"},
		{name: "wrong audience", sub: "sub-alice", email: "alice@example.com",
			tamper: resign(func(c jwt.MapClaims) { c["aud"] = "another-client" }), want: "/ui/#sso_error=rejected"},
		{name: "expired", sub: "sub-alice", email: "alice@example.com",
			tamper: resign(func(c jwt.MapClaims) {
				c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
				c["exp"] = time.Now().Add(-time.Hour).Unix()
			}), want: "/ui/#sso_error=rejected"},
		{name: "alg none", sub: "sub-alice", email: "alice@example.com",
			tamper: func(c jwt.MapClaims) (string, bool) {
				h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
				p, _ := json.Marshal(c)
				return h + "." + base64.RawURLEncoding.EncodeToString(p) + ".", true
			}, want: "/ui/#sso_error=rejected"},
		{name: "signed by another key", sub: "sub-alice", email: "alice@example.com",
			tamper: func(c jwt.MapClaims) (string, bool) {
				other, err := mockoidc.RandomKeypair(2048)
				if err != nil {
					t.Error(err)
					return "", false
				}
				s, _ := other.SignJWT(c)
				return s, true
			}, want: "/ui/#sso_error=rejected"},
		{name: "same email and name, other subject", sub: "sub-mallory", email: "alice@example.com", want: "/ui/#sso_error=no_user"},
		{name: "mfa required", sub: "sub-bob", email: "bob@example.com", want: "/ui/#sso_error=mfa_not_enrolled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			se.setTamper(tt.tamper)
			defer se.setTamper(nil)
			b := se.newBrowser(t, "")
			se.queue(tt.sub, tt.email, "alice")
			got := b.finishSSO(b.startSSO())
			if got != tt.want {
				t.Fatalf("callback sent the browser to %q, want %q", got, tt.want)
			}
			code, who, body := b.whoami("GET", nil)
			if tt.user == "" {
				if b.sessionID() != "" || code != http.StatusUnauthorized {
					t.Fatalf("refused sign-on left a session: %d %s", code, body)
				}
				return
			}
			if code != http.StatusOK || who.Name != tt.user || who.Via != "console" {
				t.Fatalf("whoami after sign-on: %d %s", code, body)
			}
		})
	}

	evs, err := se.st.ListAudit(context.Background(), store.AuditFilter{Type: "console."})
	if err != nil {
		t.Fatal(err)
	}
	var oidcLogins, refusals int
	for _, ev := range evs {
		if ev.Detail["via"] != "oidc" {
			continue
		}
		switch ev.Type {
		case web.EventLogin:
			oidcLogins++
		case web.EventLoginFailure:
			refusals++
		}
	}
	if oidcLogins != 1 || refusals != len(tests)-1 {
		t.Errorf("audited %d sign-ons and %d refusals via oidc, want 1 and %d", oidcLogins, refusals, len(tests)-1)
	}
}

// TestSSOReplay: the callback works once, only in the browser that
// started the flow, and a code (with its nonce) from one flow does not
// finish another.
func TestSSOReplay(t *testing.T) {
	t.Parallel()
	se := newSSOEnv(t, nil)
	srvURL, _ := url.Parse(se.srv.URL)
	flowCookie := func(b *browser) *http.Cookie {
		for _, c := range b.jar.Cookies(srvURL) {
			if c.Name == "__Host-pc_sso" {
				return &http.Cookie{Name: c.Name, Value: c.Value, Path: "/", Secure: true}
			}
		}
		t.Fatal("no flow cookie")
		return nil
	}
	tests := []struct {
		name string
		run  func(t *testing.T) string // returns where the replay was sent
	}{
		{name: "state replayed with its cookie", run: func(t *testing.T) string {
			b := se.newBrowser(t, "")
			se.queue("sub-alice", "alice@example.com", "alice")
			cb := b.startSSO()
			ck := flowCookie(b)
			if got := b.finishSSO(cb); got != "/ui/" {
				t.Fatalf("first callback: %q", got)
			}
			b.jar.SetCookies(srvURL, []*http.Cookie{ck})
			return b.finishSSO(cb)
		}},
		{name: "callback in another browser", run: func(t *testing.T) string {
			b := se.newBrowser(t, "")
			se.queue("sub-alice", "alice@example.com", "alice")
			cb := b.startSSO()
			return se.newBrowser(t, "").finishSSO(cb)
		}},
		{name: "code and nonce of another flow", run: func(t *testing.T) string {
			b := se.newBrowser(t, "")
			se.queue("sub-alice", "alice@example.com", "alice")
			first := b.startSSO()
			se.queue("sub-alice", "alice@example.com", "alice")
			second := b.startSSO() // replaces the flow cookie
			fq, _ := url.Parse(first)
			sq, _ := url.Parse(second)
			// The second flow's state with the first flow's code, whose
			// ID token carries the first flow's nonce.
			return b.finishSSO("/ui/oidc/callback?state=" + url.QueryEscape(sq.Query().Get("state")) +
				"&code=" + url.QueryEscape(fq.Query().Get("code")))
		}},
		{name: "used code in a new flow", run: func(t *testing.T) string {
			b := se.newBrowser(t, "")
			se.queue("sub-alice", "alice@example.com", "alice")
			first := b.startSSO()
			if got := b.finishSSO(first); got != "/ui/" {
				t.Fatalf("first callback: %q", got)
			}
			se.queue("sub-alice", "alice@example.com", "alice")
			second := b.startSSO()
			fq, _ := url.Parse(first)
			sq, _ := url.Parse(second)
			return b.finishSSO("/ui/oidc/callback?state=" + url.QueryEscape(sq.Query().Get("state")) +
				"&code=" + url.QueryEscape(fq.Query().Get("code")))
		}},
		{name: "provider says no", run: func(t *testing.T) string {
			b := se.newBrowser(t, "")
			cb := b.startSSO() // consumes a queued user: none, the default one
			q, _ := url.Parse(cb)
			return b.finishSSO("/ui/oidc/callback?state=" + url.QueryEscape(q.Query().Get("state")) + "&error=access_denied")
		}},
	}
	want := map[string]string{
		"state replayed with its cookie": "/ui/#sso_error=expired",
		"callback in another browser":    "/ui/#sso_error=expired",
		"code and nonce of another flow": "/ui/#sso_error=rejected",
		"used code in a new flow":        "/ui/#sso_error=rejected",
		"provider says no":               "/ui/#sso_error=denied",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.run(t); got != want[tt.name] {
				t.Errorf("replay sent the browser to %q, want %q", got, want[tt.name])
			}
		})
	}
}

// TestSSOProviderDown: a provider that cannot be reached fails the sign-in
// with a clear answer, before and after the redirect, and the console
// says SSO is offered.
func TestSSOProviderDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		discovered bool // the provider was reached once before going down
	}{
		{name: "down from the start"},
		{name: "down at the callback", discovered: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			se := newSSOEnv(t, nil)
			b := se.newBrowser(t, "")
			resp, body := b.do("GET", "/ui/login-csrf", nil, nil)
			if !bytes.Contains(body, []byte(`"sso":true`)) {
				t.Fatalf("login-csrf does not offer SSO: %s %s", resp.Status, body)
			}
			var got string
			if tt.discovered {
				cb := b.startSSO()
				if err := se.op.Shutdown(); err != nil {
					t.Fatal(err)
				}
				got = b.finishSSO(cb)
			} else {
				if err := se.op.Shutdown(); err != nil {
					t.Fatal(err)
				}
				resp, body := b.do("GET", "/ui/oidc/login", nil, nil)
				if resp.StatusCode != http.StatusFound {
					t.Fatalf("GET /ui/oidc/login: %s %s", resp.Status, body)
				}
				got = resp.Header.Get("Location")
			}
			if got != "/ui/#sso_error=unavailable" {
				t.Errorf("provider down: sent to %q", got)
			}
		})
	}
}

// TestSSONotConfigured: without a provider the routes do not exist.
func TestSSONotConfigured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &testAssets)
	b := e.newBrowser(t, "")
	for _, p := range []string{"/ui/oidc/login", "/ui/oidc/callback"} {
		if resp, _ := b.do("GET", p, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s without SSO: %s", p, resp.Status)
		}
	}
	if _, body := b.do("GET", "/ui/login-csrf", nil, nil); bytes.Contains(body, []byte("sso")) {
		t.Errorf("login-csrf offers SSO without a provider: %s", body)
	}
}

// TestSSOWithCode: single sign-on of a user who must present a
// verification code ends at the code step, as a password does, and the
// code opens a session audited as via oidc.
func TestSSOWithCode(t *testing.T) {
	t.Parallel()
	var secret string
	se := newSSOEnv(t, func(st *sqlite.Store, cfg *web.Config) {
		ctx := context.Background()
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		v, err := vault.New(key)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := mfa.New(mfa.Config{Store: st, Vault: v, Audit: cfg.Audit})
		if err != nil {
			t.Fatal(err)
		}
		en, err := svc.Enroll(ctx, "bob", mfa.Actor{Name: "test"})
		if err != nil {
			t.Fatal(err)
		}
		secret = en.Secret
		// The confirming code is one step back, so that the code sent
		// below (this step) is not a replay of it.
		c, _ := totp.GenerateCode(secret, time.Now().Add(-30*time.Second))
		if err := svc.Confirm(ctx, mfa.Attempt{User: "bob", Code: c}); err != nil {
			t.Fatal(err)
		}
		cfg.MFA = svc
	})
	tests := []struct {
		name string
		code func() string
		want int
	}{
		{name: "wrong code", code: func() string { return "000000" }, want: http.StatusUnauthorized},
		{name: "right code", code: func() string { c, _ := totp.GenerateCode(secret, time.Now()); return c }, want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := se.newBrowser(t, "")
			se.queue("sub-bob", "bob@example.com", "bob")
			loc := b.finishSSO(b.startSSO())
			tok, ok := strings.CutPrefix(loc, "/ui/#mfa=")
			if !ok || b.sessionID() != "" {
				t.Fatalf("sign-on of a user who needs a code sent the browser to %q", loc)
			}
			if resp, body := b.sendCode(tok, tt.code()); resp.StatusCode != tt.want {
				t.Fatalf("code step: %s %s", resp.Status, body)
			}
			code, who, body := b.whoami("GET", nil)
			if tt.want == http.StatusOK && (code != http.StatusOK || who.Name != "bob") {
				t.Fatalf("whoami after the code: %d %s", code, body)
			}
		})
	}
	evs, err := se.st.ListAudit(context.Background(), store.AuditFilter{Type: web.EventLogin})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs {
		found = found || ev.Type == web.EventLogin && ev.User == "bob" && ev.Detail["via"] == "oidc"
	}
	if !found {
		t.Errorf("no console.login of bob via oidc in %+v", evs)
	}
}
