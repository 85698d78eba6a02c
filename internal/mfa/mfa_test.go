package mfa

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"image/png"
	"log/slog"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
	"github.com/portcullis/portcullis/internal/vault"
)

// env is a service over a real SQLite store with a clock the test moves.
type env struct {
	svc   *Service
	st    store.Store
	clock *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	// The middle of a step, so that a step either side is 30 s away.
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 15, 0, time.UTC)}
	cfg.Store, cfg.Vault, cfg.Audit, cfg.Now = st, v, audit.New(st, slog.New(slog.DiscardHandler)), c.now
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{svc: svc, st: st, clock: c}
}

var src = netip.MustParseAddr("192.0.2.7")

func attempt(user, code string) Attempt {
	return Attempt{User: user, Code: code, Addr: src, Source: "192.0.2.7:5555", Via: "ssh"}
}

// code returns the TOTP code of secret at the env's time plus d.
func (e *env) code(t *testing.T, secret string, d time.Duration) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, e.clock.now().Add(d), validateOpts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolled enrolls and confirms user, returning the enrollment.
func (e *env) enrolled(t *testing.T, user string) *Enrollment {
	t.Helper()
	en, err := e.svc.Enroll(context.Background(), user, Actor{Name: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Confirm(context.Background(), attempt(user, e.code(t, en.Secret, 0))); err != nil {
		t.Fatal(err)
	}
	// Steps later, so that the confirming code's step (used) is not in
	// the skew window.
	e.clock.add(3 * period)
	return en
}

func (e *env) events(t *testing.T, typ string) []store.AuditEvent {
	t.Helper()
	evs, err := e.st.ListAudit(context.Background(), store.AuditFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestEnroll(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	en, err := e.svc.Enroll(ctx, "alice", Actor{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(en.URI)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || q.Get("issuer") != Issuer || q.Get("digits") != "6" ||
		q.Get("period") != "30" || q.Get("algorithm") != "SHA1" || q.Get("secret") != en.Secret || !strings.Contains(u.Path, "alice") {
		t.Errorf("URI %s", en.URI)
	}
	seen := map[string]bool{}
	for _, c := range en.RecoveryCodes {
		if !regexp.MustCompile(`^[A-Z2-7]{5}-[A-Z2-7]{5}$`).MatchString(c) || seen[c] {
			t.Errorf("recovery code %q malformed or repeated", c)
		}
		seen[c] = true
	}
	if len(en.RecoveryCodes) != 10 {
		t.Errorf("%d recovery codes, want 10", len(en.RecoveryCodes))
	}
	if _, err := png.Decode(bytes.NewReader(en.QRPNG)); err != nil {
		t.Errorf("QR PNG: %v", err)
	}
	// At rest: the seed only sealed, the codes only hashed.
	rec, err := e.st.GetMFAEnrollment(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != store.MFAPending || bytes.Contains(rec.Secret, []byte(en.Secret)) || rec.RecoveryLeft != 10 {
		t.Errorf("stored enrollment %+v", rec)
	}
	if st, _ := e.svc.Status(ctx, "alice"); st.State != store.MFAPending {
		t.Errorf("Status = %+v, want pending", st)
	}
	// Pending signs nobody in.
	if _, err := e.svc.Verify(ctx, attempt("alice", e.code(t, en.Secret, 0))); !errors.Is(err, ErrNotEnrolled) {
		t.Errorf("Verify while pending = %v, want ErrNotEnrolled", err)
	}
	for _, c := range []struct {
		name string
		code string
		want error
	}{
		{"recovery code does not confirm", en.RecoveryCodes[0], ErrInvalid},
		{"wrong code", "000000", ErrInvalid},
		{"right code", e.code(t, en.Secret, 0), nil},
		{"confirmed already", e.code(t, en.Secret, 0), ErrNotPending},
	} {
		if err := e.svc.Confirm(ctx, attempt("alice", c.code)); !errors.Is(err, c.want) {
			t.Errorf("%s: Confirm = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := e.svc.Enroll(ctx, "alice", Actor{Name: "alice"}); !errors.Is(err, ErrAlreadyEnrolled) {
		t.Errorf("Enroll of an active user = %v, want ErrAlreadyEnrolled", err)
	}
	if err := e.svc.Confirm(ctx, attempt("bob", "123456")); !errors.Is(err, ErrNotPending) {
		t.Errorf("Confirm without enrollment = %v, want ErrNotPending", err)
	}
	if err := e.svc.Reset(ctx, "alice", Actor{Name: "admin"}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.svc.Status(ctx, "alice"); st.State != "" {
		t.Errorf("Status after reset = %+v", st)
	}
	if n := len(e.events(t, audit.MFAEnroll)); n != 3 {
		t.Errorf("%d mfa.enroll events, want 3 (enroll, confirm, reset)", n)
	}
}

func TestVerify(t *testing.T) {
	e := newEnv(t, Config{UserBurst: 100, SourceBurst: 100})
	ctx := context.Background()
	en := e.enrolled(t, "alice")
	for _, c := range []struct {
		name string
		code func() string
		kind string
		want error
	}{
		{"current code", func() string { return e.code(t, en.Secret, 0) }, KindTOTP, nil},
		{"replayed", func() string { return e.code(t, en.Secret, 0) }, "", ErrInvalid},
		{"previous step (skew)", func() string { return e.code(t, en.Secret, -period) }, KindTOTP, nil},
		{"next step (skew)", func() string { return e.code(t, en.Secret, period) }, KindTOTP, nil},
		{"two steps ago", func() string { return e.code(t, en.Secret, -2*period) }, "", ErrInvalid},
		{"wrong", func() string { return "999999" }, "", ErrInvalid},
		{"malformed", func() string { return "12345" }, "", ErrInvalid},
		{"recovery code, spaced lower case", func() string { return strings.ToLower(en.RecoveryCodes[0]) }, KindRecovery, nil},
		{"recovery code again", func() string { return en.RecoveryCodes[0] }, "", ErrInvalid},
		{"another recovery code", func() string { return en.RecoveryCodes[1] }, KindRecovery, nil},
	} {
		kind, err := e.svc.Verify(ctx, attempt("alice", c.code()))
		if !errors.Is(err, c.want) || err == nil && kind != c.kind {
			t.Errorf("%s: Verify = %q, %v; want %q, %v", c.name, kind, err, c.kind, c.want)
		}
	}
	if _, err := e.svc.Verify(ctx, attempt("bob", "123456")); !errors.Is(err, ErrNotEnrolled) {
		t.Errorf("Verify without enrollment = %v, want ErrNotEnrolled", err)
	}
	if st, _ := e.svc.Status(ctx, "alice"); st.RecoveryLeft != 8 {
		t.Errorf("RecoveryLeft = %d, want 8", st.RecoveryLeft)
	}
	for typ, want := range map[string]int{audit.MFASuccess: 3, audit.MFAFailure: 5, audit.MFARecoveryUsed: 2} {
		if n := len(e.events(t, typ)); n != want {
			t.Errorf("%d %s events, want %d", n, typ, want)
		}
	}
}

// TestVerifyConcurrentReplay: one code presented many times at once is
// accepted exactly once.
func TestVerifyConcurrentReplay(t *testing.T) {
	e := newEnv(t, Config{UserBurst: 100, SourceBurst: 100})
	en := e.enrolled(t, "alice")
	code := e.code(t, en.Secret, 0)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.svc.Verify(context.Background(), attempt("alice", code)); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, ErrInvalid) {
				t.Errorf("Verify: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := ok.Load(); n != 1 {
		t.Errorf("%d of 10 concurrent uses accepted, want 1", n)
	}
}

// TestLockout: past the limit even the right code is refused, the lockout
// is audited, and an attempt comes back after Refill.
func TestLockout(t *testing.T) {
	for _, c := range []struct {
		name       string
		cfg        Config
		users      []string // wrong codes are entered by these in turn
		limit      string
		otherUser  bool // whether a user who made no mistake is also locked
		wantFailed int
	}{
		{"per user", Config{UserBurst: 3, SourceBurst: 100}, []string{"alice"}, "user", false, 3},
		{"per source", Config{UserBurst: 100, SourceBurst: 4}, []string{"alice", "bob"}, "source", true, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.cfg)
			ctx := context.Background()
			secrets := map[string]string{}
			for _, u := range []string{"alice", "bob", "carol"} {
				secrets[u] = e.enrolled(t, u).Secret
			}
			e.clock.t = e.clock.t.Truncate(period).Add(period / 2)
			for i := range c.wantFailed {
				u := c.users[i%len(c.users)]
				if _, err := e.svc.Verify(ctx, attempt(u, "000000")); !errors.Is(err, ErrInvalid) {
					t.Fatalf("wrong code %d: %v", i, err)
				}
			}
			if _, err := e.svc.Verify(ctx, attempt("alice", e.code(t, secrets["alice"], 0))); !errors.Is(err, ErrLocked) {
				t.Errorf("right code while locked out = %v, want ErrLocked", err)
			}
			_, err := e.svc.Verify(ctx, attempt("carol", e.code(t, secrets["carol"], 0)))
			if locked := errors.Is(err, ErrLocked); locked != c.otherUser {
				t.Errorf("another user from the same source: %v", err)
			}
			evs := e.events(t, audit.MFALockout)
			if len(evs) != 1 || evs[0].Detail["limit"] != c.limit {
				t.Errorf("lockout events %+v, want one for the %s", evs, c.limit)
			}
			e.clock.add(c.cfg.Refill + DefaultRefill)
			if _, err := e.svc.Verify(ctx, attempt("alice", e.code(t, secrets["alice"], 0))); err != nil {
				t.Errorf("right code after the refill: %v", err)
			}
		})
	}
}

func TestParseCode(t *testing.T) {
	for _, c := range []struct {
		in, kind, code string
	}{
		{"123456", KindTOTP, "123456"},
		{" 123 456 ", KindTOTP, "123456"},
		{"abcde-fgh23", KindRecovery, "ABCDEFGH23"},
		{"ABCDEFGH23", KindRecovery, "ABCDEFGH23"},
		{"12345", "", ""},
		{"1234567", "", ""},
		{"ABCDEFGH01", "", ""}, // 0 and 1 are not base32
		{"１２３４５６", "", ""},     // full-width digits
		{strings.Repeat("1", 100), "", ""},
		{"", "", ""},
	} {
		kind, code, err := ParseCode(c.in)
		if kind != c.kind || code != c.code || (err == nil) != (c.kind != "") {
			t.Errorf("ParseCode(%q) = %q, %q, %v; want %q, %q", c.in, kind, code, err, c.kind, c.code)
		}
	}
}

// FuzzParseCode: whatever a client types, ParseCode does not panic, and
// what it accepts is a well-formed code.
func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"123456", "abcde-fghij", " 1 2 3 4 5 6", "\xff\xfe", "ABCDE-FGHIJ-"} {
		f.Add(s)
	}
	totpRE := regexp.MustCompile(`^[0-9]{6}$`)
	recRE := regexp.MustCompile(`^[A-Z2-7]{10}$`)
	f.Fuzz(func(t *testing.T, s string) {
		kind, code, err := ParseCode(s)
		switch {
		case err != nil:
			if kind != "" || code != "" {
				t.Errorf("ParseCode(%q) failed but returned %q, %q", s, kind, code)
			}
		case kind == KindTOTP && !totpRE.MatchString(code), kind == KindRecovery && !recRE.MatchString(code):
			t.Errorf("ParseCode(%q) = %q %q", s, kind, code)
		case kind != KindTOTP && kind != KindRecovery:
			t.Errorf("ParseCode(%q): kind %q", s, kind)
		}
	})
}

func TestTerminalQR(t *testing.T) {
	out, err := TerminalQR("otpauth://totp/Portcullis:alice?secret=JBSWY3DPEHPK3PXP&issuer=Portcullis")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 10 || !strings.ContainsAny(out, "▀▄ ") {
		t.Fatalf("QR:\n%s", out)
	}
	for _, l := range lines {
		if len([]rune(l)) != len([]rune(lines[0])) {
			t.Fatalf("ragged QR line %q", l)
		}
	}
}
