package web_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
	"github.com/portcullis/portcullis/internal/web"
)

// mfaEnv is a console whose users alice (enrolled), carol (mfa: required,
// not enrolled) and dave (neither) share alice's password.
type mfaEnv struct {
	*env
	secret string
}

func newMFAEnv(t *testing.T) *mfaEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{st: st, clock: &clock{t: time.Now().UTC()},
		users: map[string]bool{"alice": true, "carol": true, "dave": true}}
	hash, err := password.Hash(alicePassword)
	if err != nil {
		t.Fatal(err)
	}
	for u := range e.users {
		if err := st.SetPassword(ctx, u, hash, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	auditLog := audit.New(st, log)
	svc, err := mfa.New(mfa.Config{Store: st, Vault: v, Audit: auditLog, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	en, err := svc.Enroll(ctx, "alice", mfa.Actor{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	me := &mfaEnv{env: e, secret: en.Secret}
	if err := svc.Confirm(ctx, mfa.Attempt{User: "alice", Code: me.code(t, 0)}); err != nil {
		t.Fatal(err)
	}
	// Past the confirming code's step and its skew window.
	e.clock.Advance(2 * time.Minute)
	e.console, err = web.New(web.Config{
		Store: st,
		Users: func(_ context.Context, name string) (bool, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.users[name], nil
		},
		Audit:      auditLog,
		Log:        log,
		Now:        e.clock.Now,
		MFA:        svc,
		RequireMFA: func(_ context.Context, name string) (bool, error) { return name == "carol", nil },
		Assets:     testAssets,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", api.HTTPS(http.NotFoundHandler(), e.console.Authenticator()))
	mux.Handle("/", e.console.Handler())
	e.srv = httptest.NewTLSServer(mux)
	t.Cleanup(e.srv.Close)
	return me
}

func (e *mfaEnv) code(t *testing.T, d time.Duration) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(e.secret, e.clock.Now().Add(d), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// challenge signs in with the password and returns the pending token.
func (b *browser) challenge(user string) string {
	b.t.Helper()
	resp, body := b.login(user, alicePassword)
	var ch web.MFAChallenge
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &ch) != nil || !ch.MFARequired || ch.Token == "" {
		b.t.Fatalf("password step of %s: %s %s", user, resp.Status, body)
	}
	if b.sessionID() != "" {
		b.t.Fatalf("a session cookie before the code")
	}
	return ch.Token
}

func (b *browser) sendCode(token, code string) (*http.Response, []byte) {
	b.t.Helper()
	body, _ := json.Marshal(map[string]string{"token": token, "code": code})
	return b.do("POST", "/ui/login/mfa", jsonHeader(b.loginCSRF()), body)
}

// TestLoginMFA: the two-step console sign-in.
func TestLoginMFA(t *testing.T) {
	e := newMFAEnv(t)
	b := e.newBrowser(t, "")

	// Users who need no code sign in as before.
	if resp, body := b.login("dave", alicePassword); resp.StatusCode != http.StatusOK || b.sessionID() == "" {
		t.Fatalf("dave: %s %s", resp.Status, body)
	}
	b = e.newBrowser(t, "")
	// Required but not enrolled: refused with what to do.
	resp, body := b.login("carol", alicePassword)
	if resp.StatusCode != http.StatusForbidden || errorCode(t, body) != "mfa_not_enrolled" ||
		!json.Valid(body) || !contains(body, "portcullis mfa enroll carol") || b.sessionID() != "" {
		t.Fatalf("carol: %s %s", resp.Status, body)
	}

	for _, c := range []struct {
		name     string
		token    func(b *browser) string
		code     func() string
		from     string // source address of the code step
		advance  time.Duration
		want     int
		wantCode string
	}{
		{name: "wrong code", token: func(b *browser) string { return b.challenge("alice") },
			code: func() string { return "12345x" }, want: 401, wantCode: "mfa_invalid"},
		{name: "unknown token", token: func(*browser) string { return "bogus" },
			code: func() string { return e.code(t, 0) }, want: 401, wantCode: "mfa_expired"},
		{name: "expired token", token: func(b *browser) string { return b.challenge("alice") },
			code: func() string { return e.code(t, 0) }, advance: 6 * time.Minute, want: 401, wantCode: "mfa_expired"},
		{name: "code from another source", token: func(b *browser) string { return b.challenge("alice") },
			code: func() string { return e.code(t, 0) }, from: "127.0.0.2", want: 401, wantCode: "mfa_expired"},
		{name: "right code", token: func(b *browser) string { return b.challenge("alice") },
			code: func() string { return e.code(t, 0) }, want: 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := e.newBrowser(t, "")
			tok := c.token(b)
			e.clock.Advance(c.advance)
			sender := b
			if c.from != "" {
				sender = e.newBrowser(t, c.from)
			}
			resp, body := sender.sendCode(tok, c.code())
			if resp.StatusCode != c.want || (c.wantCode != "" && errorCode(t, body) != c.wantCode) {
				t.Fatalf("code step: %s %s, want %d %s", resp.Status, body, c.want, c.wantCode)
			}
			if c.want != 200 {
				if sender.sessionID() != "" {
					t.Error("a session after a refused code")
				}
				return
			}
			var lr web.LoginResponse
			if err := json.Unmarshal(body, &lr); err != nil || lr.Name != "alice" || lr.CSRFToken == "" || sender.sessionID() == "" {
				t.Fatalf("login answer %s, cookie %q", body, sender.sessionID())
			}
			// One use: the same token again is refused, the code too.
			if resp, body := sender.sendCode(tok, c.code()); resp.StatusCode != 401 {
				t.Errorf("token used twice: %s %s", resp.Status, body)
			}
			other := e.newBrowser(t, "")
			if resp, body := other.sendCode(other.challenge("alice"), c.code()); resp.StatusCode != 401 || errorCode(t, body) != "mfa_invalid" {
				t.Errorf("code replayed: %s %s", resp.Status, body)
			}
		})
	}
	evs, err := e.st.ListAudit(context.Background(), store.AuditFilter{Type: "mfa."})
	if err != nil {
		t.Fatal(err)
	}
	var ok, failed int
	for _, ev := range evs {
		switch ev.Type {
		case audit.MFASuccess:
			ok++
		case audit.MFAFailure:
			failed++
		}
		if ev.Detail["via"] == "console" && ev.User != "alice" {
			t.Errorf("event %+v", ev)
		}
	}
	if ok != 1 || failed != 2 {
		t.Errorf("%d mfa.success and %d mfa.failure events, want 1 and 2", ok, failed)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
