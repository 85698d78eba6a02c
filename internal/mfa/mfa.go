// Package mfa is the second factor of the gateway: TOTP (RFC 6238) codes
// from an authenticator app, and one-time recovery codes.
//
// An enrollment goes through two states: Enroll makes a secret and ten
// recovery codes and stores it pending (the secret sealed by the vault, the
// codes only as hashes); Confirm activates it with a first valid code, which
// proves the user's app holds the secret. Only an active enrollment signs
// anyone in; Reset removes it.
//
// Verify accepts a code of the current 30-second step or the one on either
// side (clock skew), or an unused recovery code. Every accepted code is
// recorded in the store by an insert whose primary key is (user, step), so
// a code is accepted once, even when two connections, or two gateways
// sharing the store, present it at the same moment. Failures are rate
// limited per user and per source address; running out of attempts is a
// lockout, audited once when it starts.
//
// Who must present a code is not this package's question. On SSH it is the
// policy engine's (policy.Engine.SecondFactor): a User with mfa: required,
// or a require_mfa policy covering the connection without an autologin
// policy waiving it. A user who enrolled without being required is not
// asked on SSH: knowing that would cost a store read on every connection
// of every user, and the User resource, not a table row, is where an admin
// states who is asked, the same on every gateway. The console also asks
// enrolled users (its sign-in already reads the store): enrolling protects
// one's own console sign-in.
//
// Codes are six digits, thirty seconds, HMAC-SHA1: the parameters every
// authenticator app supports (several ignore any others in the URI).
package mfa

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/time/rate"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/vault"
)

// Issuer is the name authenticator apps show beside the user's.
const Issuer = "Portcullis"

// period is the TOTP time step.
const period = 30 * time.Second

var validateOpts = totp.ValidateOpts{Period: uint(period / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Errors of Verify and Confirm. Callers show ErrNotEnrolled and ErrLocked
// as they are; ErrInvalid covers a wrong, replayed or malformed code alike,
// so that a guesser learns nothing from the answer.
var (
	ErrNotEnrolled     = errors.New("no active second factor enrolled")
	ErrLocked          = errors.New("too many wrong codes: try again later")
	ErrInvalid         = errors.New("wrong or already used code")
	ErrAlreadyEnrolled = errors.New("already enrolled: an admin must reset it first (portcullis mfa reset USER)")
	ErrNotPending      = errors.New("no enrollment waiting for confirmation: enroll first")
)

// Defaults of Config's limits.
const (
	DefaultUserBurst   = 5
	DefaultSourceBurst = 20
	DefaultRefill      = time.Minute
)

// Config is what the service needs. Zero limits take the defaults.
type Config struct {
	// Store keeps enrollments, recovery code hashes and used steps.
	Store store.Store
	// Vault seals the TOTP seeds.
	Vault *vault.Vault
	// Audit records successes, failures, lockouts, enrollments and
	// recovery code use.
	Audit *audit.Log
	// Log gets what is not audited; nil discards.
	Log *slog.Logger
	// Now is the clock; nil means time.Now. Tests move it instead of
	// sleeping.
	Now func() time.Time
	// UserBurst and SourceBurst are how many wrong codes a user, and a
	// source address, may enter before being locked out; one attempt
	// comes back every Refill. Defaults 5, 20 and one minute.
	UserBurst   int
	SourceBurst int
	Refill      time.Duration
}

// Service enrolls users and verifies their codes. It is safe for
// concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex // guards the limiter maps
	byUser   map[string]*rate.Limiter
	bySource map[netip.Addr]*rate.Limiter
}

// New checks cfg and returns a service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Vault == nil || cfg.Audit == nil {
		return nil, errors.New("mfa: Store, Vault and Audit are required")
	}
	if cfg.UserBurst <= 0 {
		cfg.UserBurst = DefaultUserBurst
	}
	if cfg.SourceBurst <= 0 {
		cfg.SourceBurst = DefaultSourceBurst
	}
	if cfg.Refill <= 0 {
		cfg.Refill = DefaultRefill
	}
	s := &Service{cfg: cfg, log: cfg.Log, now: cfg.Now,
		byUser: map[string]*rate.Limiter{}, bySource: map[netip.Addr]*rate.Limiter{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Enrollment is what a new enrollment hands the user, once: nothing of it
// but the sealed secret and the codes' hashes is kept.
type Enrollment struct {
	// URI is the otpauth:// URI authenticator apps import.
	URI string `json:"uri"`
	// Secret is the base32 seed, for typing into an app by hand.
	Secret string `json:"secret"`
	// RecoveryCodes are ten one-time codes, XXXXX-XXXXX.
	RecoveryCodes []string `json:"recovery_codes"`
	// QRPNG is the URI as a QR code image.
	QRPNG []byte `json:"-"`
}

// QRBase64 returns the QR code PNG in base64, for JSON and data: URLs.
func (e *Enrollment) QRBase64() string { return base64.StdEncoding.EncodeToString(e.QRPNG) }

// Actor says who did something, for the audit trail.
type Actor struct {
	Name   string // who asked (the user, an admin, "local superuser")
	Source string // client address
}

// aad binds a sealed seed to its user: a seed copied to another user's row
// fails to open.
func aad(user string) string { return "mfa:" + user }

// Enroll makes a new pending enrollment for user, replacing a pending one.
// An active enrollment is ErrAlreadyEnrolled: replacing it would let
// whoever holds the user's first factor alone take over the second.
func (s *Service) Enroll(ctx context.Context, user string, by Actor) (*Enrollment, error) {
	cur, err := s.cfg.Store.GetMFAEnrollment(ctx, user)
	switch {
	case err == nil && cur.State == store.MFAActive:
		return nil, ErrAlreadyEnrolled
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("enroll %s: %w", user, err)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: Issuer, AccountName: user, Period: validateOpts.Period,
		Digits: validateOpts.Digits, Algorithm: validateOpts.Algorithm, SecretSize: 20})
	if err != nil {
		return nil, fmt.Errorf("enroll %s: generate secret: %w", user, err)
	}
	sealed, err := s.cfg.Vault.Seal([]byte(key.Secret()), aad(user))
	if err != nil {
		return nil, fmt.Errorf("enroll %s: %w", user, err)
	}
	codes, hashes, err := newRecoveryCodes()
	if err != nil {
		return nil, fmt.Errorf("enroll %s: %w", user, err)
	}
	img, err := qrPNG(key.URL(), 256)
	if err != nil {
		return nil, fmt.Errorf("enroll %s: %w", user, err)
	}
	if err := s.cfg.Store.PutMFAEnrollment(ctx, store.MFAEnrollment{User: user, Secret: sealed, State: store.MFAPending,
		CreatedAt: s.now()}, hashes); err != nil {
		return nil, fmt.Errorf("enroll %s: %w", user, err)
	}
	_ = s.cfg.Audit.Write(ctx, store.AuditEvent{Type: audit.MFAEnroll, Outcome: audit.Success, User: by.Name, Source: by.Source,
		Message: fmt.Sprintf("second factor of %s enrolled, waiting for a first code", user),
		Detail:  map[string]any{"user": user, "state": store.MFAPending}})
	return &Enrollment{URI: key.URL(), Secret: key.Secret(), RecoveryCodes: codes, QRPNG: img}, nil
}

// Status is a user's enrollment as the console and CLI show it.
type Status struct {
	State        string    `json:"state"` // "", store.MFAPending or store.MFAActive
	ActivatedAt  time.Time `json:"activated_at,omitzero"`
	RecoveryLeft int       `json:"recovery_codes_left"`
}

// Status returns user's enrollment state; an empty State when none.
func (s *Service) Status(ctx context.Context, user string) (Status, error) {
	e, err := s.cfg.Store.GetMFAEnrollment(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return Status{}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("MFA status of %s: %w", user, err)
	}
	return Status{State: e.State, ActivatedAt: e.ActivatedAt, RecoveryLeft: e.RecoveryLeft}, nil
}

// Reset removes user's enrollment; the user must enroll again.
func (s *Service) Reset(ctx context.Context, user string, by Actor) error {
	if err := s.cfg.Store.DeleteMFA(ctx, user); err != nil {
		return fmt.Errorf("reset MFA of %s: %w", user, err)
	}
	_ = s.cfg.Audit.Write(ctx, store.AuditEvent{Type: audit.MFAEnroll, Outcome: audit.Info, User: by.Name, Source: by.Source,
		Message: fmt.Sprintf("second factor of %s reset", user), Detail: map[string]any{"user": user, "state": "reset"}})
	return nil
}

// Attempt is one code presented by a user.
type Attempt struct {
	User string
	Code string
	// Addr is the client's address, for the per-source limit; Source its
	// host:port for the audit trail.
	Addr   netip.Addr
	Source string
	// Via is "ssh" or "console"; SessionID ties SSH events together.
	Via       string
	SessionID string
}

// Confirm activates user's pending enrollment with a first TOTP code (a
// recovery code does not prove the app has the secret). The code counts
// as used: it cannot sign in afterwards.
func (s *Service) Confirm(ctx context.Context, a Attempt) (err error) {
	c, err := s.checkLimits(a)
	if err != nil {
		return err
	}
	defer func() { c.settle(err) }()
	e, err := s.cfg.Store.GetMFAEnrollment(ctx, a.User)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && e.State != store.MFAPending:
		return ErrNotPending
	case err != nil:
		return fmt.Errorf("confirm MFA of %s: %w", a.User, err)
	}
	kind, code, err := ParseCode(a.Code)
	if err != nil || kind != KindTOTP {
		return s.fail(ctx, a, "malformed")
	}
	if err := s.useTOTP(ctx, a, e, code); err != nil {
		return err
	}
	if err := s.cfg.Store.ActivateMFA(ctx, a.User, s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// Reset or confirmed by someone else meanwhile.
			return ErrNotPending
		}
		return fmt.Errorf("confirm MFA of %s: %w", a.User, err)
	}
	_ = s.cfg.Audit.Write(ctx, store.AuditEvent{Type: audit.MFAEnroll, Outcome: audit.Success, User: a.User, Source: a.Source,
		SessionID: a.SessionID, Message: fmt.Sprintf("second factor of %s confirmed and active", a.User),
		Detail: map[string]any{"user": a.User, "state": store.MFAActive, "via": a.Via}})
	return nil
}

// Verify checks a code for an active enrollment and returns its kind
// (KindTOTP or KindRecovery). Errors: ErrNotEnrolled (no active
// enrollment: not charged to the limits), ErrLocked, ErrInvalid, or a
// store or vault failure (wrapped; the caller fails closed).
func (s *Service) Verify(ctx context.Context, a Attempt) (_ string, err error) {
	c, err := s.checkLimits(a)
	if err != nil {
		return "", err
	}
	defer func() { c.settle(err) }()
	e, err := s.cfg.Store.GetMFAEnrollment(ctx, a.User)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && e.State != store.MFAActive:
		return "", ErrNotEnrolled
	case err != nil:
		return "", fmt.Errorf("verify code of %s: %w", a.User, err)
	}
	kind, code, err := ParseCode(a.Code)
	if err != nil {
		return "", s.fail(ctx, a, "malformed")
	}
	if kind == KindRecovery {
		return kind, s.useRecovery(ctx, a, code)
	}
	if err := s.useTOTP(ctx, a, e, code); err != nil {
		return "", err
	}
	_ = s.cfg.Audit.Write(ctx, store.AuditEvent{Type: audit.MFASuccess, Outcome: audit.Success, User: a.User, Source: a.Source,
		SessionID: a.SessionID, Message: "verification code accepted", Detail: map[string]any{"via": a.Via}})
	return kind, nil
}

// useTOTP checks code against e's secret at now and the steps on either
// side, and records the matching step as used.
func (s *Service) useTOTP(ctx context.Context, a Attempt, e store.MFAEnrollment, code string) error {
	secret, err := s.cfg.Vault.Open(e.Secret, aad(a.User))
	if err != nil {
		return fmt.Errorf("verify code of %s: %w", a.User, err)
	}
	now := s.now()
	step := int64(-1)
	// Every candidate is computed and compared in constant time, so that
	// timing does not tell which step matched.
	for _, off := range []int64{-1, 0, 1} {
		t := now.Add(time.Duration(off) * period)
		want, err := totp.GenerateCodeCustom(string(secret), t, validateOpts)
		if err != nil {
			return fmt.Errorf("verify code of %s: %w", a.User, err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			step = t.Unix() / int64(period/time.Second)
		}
	}
	if step < 0 {
		return s.fail(ctx, a, "wrong_code")
	}
	switch err := s.cfg.Store.UseMFAStep(ctx, a.User, step, now); {
	case errors.Is(err, store.ErrConflict):
		return s.fail(ctx, a, "replayed")
	case err != nil:
		return fmt.Errorf("verify code of %s: %w", a.User, err)
	}
	return nil
}

func (s *Service) useRecovery(ctx context.Context, a Attempt, code string) error {
	switch err := s.cfg.Store.UseRecoveryCode(ctx, a.User, hashRecovery(code), s.now()); {
	case errors.Is(err, store.ErrNotFound):
		return s.fail(ctx, a, "wrong_recovery_code")
	case err != nil:
		return fmt.Errorf("verify recovery code of %s: %w", a.User, err)
	}
	left := -1
	if st, err := s.Status(ctx, a.User); err == nil {
		left = st.RecoveryLeft
	}
	_ = s.cfg.Audit.Write(ctx, store.AuditEvent{Type: audit.MFARecoveryUsed, Outcome: audit.Success, User: a.User, Source: a.Source,
		SessionID: a.SessionID, Message: fmt.Sprintf("recovery code used; %d left", left),
		Detail: map[string]any{"via": a.Via, "recovery_codes_left": left}})
	return nil
}

// limiters returns the user's and the source's limiters, creating them.
func (s *Service) limiters(a Attempt) (*rate.Limiter, *rate.Limiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	// Bound the tables: forget keys whose limit has fully refilled.
	if len(s.byUser)+len(s.bySource) > 10000 {
		for k, l := range s.byUser {
			if l.TokensAt(now) >= float64(s.cfg.UserBurst) {
				delete(s.byUser, k)
			}
		}
		for k, l := range s.bySource {
			if l.TokensAt(now) >= float64(s.cfg.SourceBurst) {
				delete(s.bySource, k)
			}
		}
	}
	u := s.byUser[a.User]
	if u == nil {
		u = rate.NewLimiter(rate.Every(s.cfg.Refill), s.cfg.UserBurst)
		s.byUser[a.User] = u
	}
	src := s.bySource[a.Addr]
	if src == nil {
		src = rate.NewLimiter(rate.Every(s.cfg.Refill), s.cfg.SourceBurst)
		s.bySource[a.Addr] = src
	}
	return u, src
}

// charge is one attempt taken from a user's and a source's budgets.
type charge struct {
	u, src *rate.Reservation
	at     time.Time
}

// settle gives the attempt back unless it was a wrong guess: only
// failures count against the limits, but every attempt is charged before
// its code is compared, so that attempts made in parallel cannot all pass
// the check before any of them is charged.
func (c *charge) settle(err error) {
	if err == nil || !errors.Is(err, ErrInvalid) {
		c.u.CancelAt(c.at)
		c.src.CancelAt(c.at)
	}
}

// checkLimits takes an attempt from the user's and the source's budgets,
// refusing it while either is locked out, before the code is looked at: a
// locked-out guesser learns nothing, even with the right code.
func (s *Service) checkLimits(a Attempt) (*charge, error) {
	u, src := s.limiters(a)
	now := s.now()
	ru, rs := u.ReserveN(now, 1), src.ReserveN(now, 1)
	if !ru.OK() || ru.DelayFrom(now) > 0 || !rs.OK() || rs.DelayFrom(now) > 0 {
		ru.CancelAt(now)
		rs.CancelAt(now)
		s.log.Debug("MFA attempt while locked out", "user", a.User, "source", a.Source)
		return nil, ErrLocked
	}
	return &charge{u: ru, src: rs, at: now}, nil
}

// fail audits a failure (checkLimits charged it), and audits
// a lockout when this failure used the last attempt of either.
func (s *Service) fail(ctx context.Context, a Attempt, reason string) error {
	// The attempt was charged by checkLimits.
	u, src := s.limiters(a)
	now := s.now()
	_ = s.cfg.Audit.Write(ctx, store.AuditEvent{Type: audit.MFAFailure, Outcome: audit.Deny, User: a.User, Source: a.Source,
		SessionID: a.SessionID, Message: "verification code refused: " + reason,
		Detail: map[string]any{"via": a.Via, "reason": reason}})
	for _, l := range []struct {
		lim   *rate.Limiter
		which string
	}{{u, "user"}, {src, "source"}} {
		if l.lim.TokensAt(now) < 1 {
			_ = s.cfg.Audit.Write(ctx, store.AuditEvent{Type: audit.MFALockout, Outcome: audit.Deny, User: a.User, Source: a.Source,
				SessionID: a.SessionID, Message: fmt.Sprintf("second factor locked out: too many wrong codes for this %s", l.which),
				Detail: map[string]any{"via": a.Via, "limit": l.which, "retry_every_seconds": int(s.cfg.Refill / time.Second)}})
		}
	}
	return ErrInvalid
}
