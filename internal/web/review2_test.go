package web_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/portcullis/portcullis/internal/api"
	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/password"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
	"github.com/portcullis/portcullis/internal/web"
)

// TestReview2MFAStepOnAnotherGateway: issue 7 runs two or more gateways
// behind a TCP load balancer on one database. The console's pending
// sign-ins (password right, code to come) live only in the memory of the
// gateway that checked the password, so when the code step's connection
// is balanced to the other gateway the sign-in is refused as "expired":
// an enrolled user cannot reliably sign in to an HA console. Two consoles
// on one store, one cookie jar (cookies ignore the port, as they would
// behind one balancer name).
func TestReview2MFAStepOnAnotherGateway(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Now().UTC()}
	hash, err := password.Hash(alicePassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetPassword(ctx, "alice", hash, clk.Now()); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	auditLog := audit.New(st, log)
	svc, err := mfa.New(mfa.Config{Store: st, Vault: v, Audit: auditLog, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	en, err := svc.Enroll(ctx, "alice", mfa.Actor{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	codeAt := func(d time.Duration) string {
		c, err := totp.GenerateCodeCustom(en.Secret, clk.Now().Add(d), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := svc.Confirm(ctx, mfa.Attempt{User: "alice", Code: codeAt(0)}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)

	gateway := func() *env {
		e := &env{st: st, clock: clk, users: map[string]bool{"alice": true}}
		e.console, err = web.New(web.Config{
			Store:  st,
			Users:  func(_ context.Context, name string) (bool, error) { return name == "alice", nil },
			Audit:  auditLog,
			Log:    log,
			Now:    clk.Now,
			MFA:    svc,
			Assets: testAssets,
		})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/api/v1/", api.HTTPS(http.NotFoundHandler(), e.console.Authenticator()))
		mux.Handle("/", e.console.Handler())
		e.srv = httptest.NewTLSServer(mux)
		t.Cleanup(e.srv.Close)
		return e
	}
	a, b := gateway(), gateway()
	viaA := a.newBrowser(t, "")
	viaB := &browser{t: t, e: b, c: viaA.c, jar: viaA.jar} // same browser, balanced to b

	tok := viaA.challenge("alice")
	resp, body := viaB.sendCode(tok, codeAt(0))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("code step balanced to the other gateway: %s %s, want 200", resp.Status, body)
	}
}
