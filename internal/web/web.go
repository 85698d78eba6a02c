// Package web is the gateway's web console: it serves the built
// single-page application (embedded from dist/), signs users in and out
// with their local password, and authenticates the browser's /api/v1 calls
// by session cookie.
//
// A console session lives in the store. The browser holds only a random id
// in a __Host- cookie (Secure, HttpOnly, SameSite=Strict) and the store
// holds only its SHA-256, so a copy of the database opens no session.
// Sessions end after IdleTimeout without use, after MaxAge whatever the
// use, at logout, and when their user is deleted. Every state change needs
// the session's CSRF token in the X-CSRF-Token header (a synchronizer
// token); the login, which has no session yet, uses a double-submit cookie
// instead. Failed logins are rate limited per source network and per user
// name. A user who must present a second factor (mfa: required, or an
// enrolled TOTP) gets, for a right password, a one-use token bound to the
// source network instead of a session, and trades it with a code at POST
// /ui/login/mfa within five minutes.
//
// The lifecycle: New checks the configuration and reads the assets;
// Handler serves / and /ui/ on the HTTPS listener; Authenticator sits in
// the API's chain after the API key one; Run deletes expired sessions until
// its context ends.
package web

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/portcullis/portcullis/internal/audit"
	"github.com/portcullis/portcullis/internal/mfa"
	"github.com/portcullis/portcullis/internal/sso"
	"github.com/portcullis/portcullis/internal/store"
)

// Audit event types the console writes.
const (
	EventLogin        = "console.login"
	EventLoginFailure = "console.login_failure"
	EventLogout       = "console.logout"
	// EventSSHSignIn is a browser sign-in that vouched for a waiting SSH
	// login; the SSH front writes the login itself.
	EventSSHSignIn = "console.ssh_sign_in"
)

// Defaults of Config's durations.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxAge      = 12 * time.Hour
)

// Config is what the console needs from the gateway.
type Config struct {
	// Store keeps sessions and password hashes. Required.
	Store store.Store
	// Users reports whether name is a User resource now. A login and every
	// use of a session ask it, so that deleting a user ends their console
	// sessions. Required.
	Users func(ctx context.Context, name string) (exists bool, err error)
	// Roles gives the roles a login answers with. If nil, the login
	// answers an empty list (the console reads GET /api/v1/me anyway).
	Roles func(ctx context.Context, name string) ([]string, error)
	// Audit records sign-ins, failures, lockouts and sign-outs. Required.
	Audit *audit.Log
	// Log gets what the client is not told. If nil, nothing is logged.
	Log *slog.Logger
	// IdleTimeout ends a session unused this long; 0 means
	// DefaultIdleTimeout. Use is recorded at most once a minute, so a
	// session may end up to a minute early.
	IdleTimeout time.Duration
	// MaxAge ends a session this long after sign-in, whatever its use;
	// 0 means DefaultMaxAge.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now. Tests move it to expire
	// sessions and refill rate limits without sleeping.
	Now func() time.Time
	// Sleep waits d or until ctx ends (the delay of a sign-in for a user
	// under attack); nil means a timer. Tests pass one that moves their
	// clock.
	Sleep func(ctx context.Context, d time.Duration)
	// MFA verifies second-factor codes at sign-in. A user is asked one
	// when RequireMFA says so or when they have an active enrollment. If
	// nil, a user who must present a code is refused (fail closed).
	MFA *mfa.Service
	// RequireMFA reports whether name must present a verification code
	// (the User says mfa: required). If nil, only enrolled users are
	// asked.
	RequireMFA func(ctx context.Context, name string) (bool, error)
	// DirectoryPassword, when set, checks a sign-in that no console
	// password matched against the directory, creating the directory
	// user on first sign-in; it refuses local users. An error wrapping
	// directory.ErrUnavailable is answered 503 with a clear message (fail
	// closed). If nil, only console passwords are checked.
	DirectoryPassword func(ctx context.Context, user, password string) (bool, error)
	// SSO, when set, offers single sign-on with an OpenID Connect
	// provider: GET /ui/oidc/login and its callback. SSOUser is then
	// required.
	SSO *sso.Provider
	// SSOUser returns the User a verified provider account signs in as:
	// the one linked to its (issuer, subject), or one it creates when the
	// configuration allows. An error wrapping sso.ErrNoUser refuses the
	// sign-in; any other is an internal error.
	SSOUser func(ctx context.Context, id sso.Identity) (string, error)
	// Assets is the built console, a tree with index.html and assets/.
	// If nil, the files embedded at build time. Without index.html the
	// console answers 503 asking for `make`.
	Assets fs.FS
}

// Console serves the web console. Its methods are safe for concurrent use.
type Console struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	assets fs.FS
	built  bool // index.html exists
	index  index

	// verifySlots bounds concurrent password verifications: each costs
	// argon2id's memory, and a burst of logins must not exhaust it.
	verifySlots chan struct{}

	bySource *limiter
	byUser   *limiter // slows a user's sign-ins from every source
	// byUserSource refuses a user's sign-ins from one source: a stranger
	// locks out only the pair (user, stranger's source).
	byUserSource *limiter
	sleep        func(ctx context.Context, d time.Duration)
}

// New checks cfg and reads the console's index page.
func New(cfg Config) (*Console, error) {
	if cfg.Store == nil || cfg.Users == nil || cfg.Audit == nil {
		return nil, errors.New("web console: Store, Users and Audit are required")
	}
	if cfg.SSO != nil && cfg.SSOUser == nil {
		return nil, errors.New("web console: SSOUser is required with SSO")
	}
	if cfg.IdleTimeout < 0 || cfg.MaxAge < 0 {
		return nil, fmt.Errorf("web console: negative timeout (idle %v, max age %v)", cfg.IdleTimeout, cfg.MaxAge)
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	c := &Console{
		cfg:         cfg,
		log:         cfg.Log,
		now:         cfg.Now,
		assets:      cfg.Assets,
		verifySlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
		bySource:    newLimiter(loginEvery, loginBurst, maxLimiterKeys),
		byUser:      newLimiter(loginEvery, loginBurst, maxLimiterKeys),

		byUserSource: newLimiter(loginEvery, loginBurst, maxLimiterKeys),
		sleep:        cfg.Sleep,
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.assets == nil {
		c.assets = builtAssets()
	}
	var err error
	if c.index, c.built, err = loadIndex(c.assets); err != nil {
		return nil, fmt.Errorf("web console: %w", err)
	}
	if !c.built {
		c.log.Warn("web console assets are not built: /ui/ answers 503 until the binary is built with make")
	}
	return c, nil
}

// Handler serves the console: GET / redirects to /ui/; GET /ui/ is the
// application; /ui/assets/ its files; GET /ui/login-csrf, POST /ui/login,
// POST /ui/login/mfa (the verification code, when one is asked) and POST
// /ui/logout sign in and out; with single sign-on, GET /ui/oidc/login and
// GET /ui/oidc/callback (see serveSSOLogin), and GET /ui/oidc/ssh/CODE for
// a waiting SSH login (see BeginSSHSignIn). Every other path is 404. Every
// response carries the console's security headers.
//
// Redirects go only to fixed paths of the console: nothing in a request
// chooses where a redirect leads.
func (c *Console) Handler() http.Handler {
	return securityHeaders(http.HandlerFunc(c.route))
}

func (c *Console) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/" || p == "/ui":
		if allow(w, r, http.MethodGet) {
			http.Redirect(w, r, "/ui/", http.StatusFound)
		}
	case p == "/ui/":
		if allow(w, r, http.MethodGet) {
			c.serveIndex(w, r)
		}
	case strings.HasPrefix(p, "/ui/assets/"):
		if allow(w, r, http.MethodGet) {
			c.serveAsset(w, r)
		}
	case p == "/ui/login-csrf":
		if allow(w, r, http.MethodGet) {
			c.serveLoginCSRF(w, r)
		}
	case p == "/ui/login":
		if allow(w, r, http.MethodPost) {
			c.serveLogin(w, r)
		}
	case p == "/ui/login/mfa":
		if allow(w, r, http.MethodPost) {
			c.serveLoginMFA(w, r)
		}
	case p == "/ui/oidc/login" && c.cfg.SSO != nil:
		if allow(w, r, http.MethodGet) {
			c.serveSSOLogin(w, r)
		}
	case strings.HasPrefix(p, sshSignInPath) && c.cfg.SSO != nil:
		if allow(w, r, http.MethodGet) {
			c.serveSSHSignIn(w, r, strings.TrimPrefix(p, sshSignInPath))
		}
	case p == "/ui/oidc/callback" && c.cfg.SSO != nil:
		if allow(w, r, http.MethodGet) {
			c.serveSSOCallback(w, r)
		}
	case p == "/ui/logout":
		if allow(w, r, http.MethodPost) {
			c.serveLogout(w, r)
		}
	default:
		writeError(w, http.StatusNotFound, "not found")
	}
}

// allow reports whether r's method is method (HEAD counting as GET), and
// answers 405 when it is not.
func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || method == http.MethodGet && r.Method == http.MethodHead {
		return true
	}
	if method == http.MethodGet {
		w.Header().Set("Allow", "GET, HEAD")
	} else {
		w.Header().Set("Allow", method)
	}
	writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
	return false
}

// sweepEvery is how often Run deletes expired sessions and forgets idle
// rate limits.
const sweepEvery = 5 * time.Minute

// Run deletes expired sessions and forgets rate limits that have refilled,
// every few minutes, until ctx ends. Sessions past their idle timeout but
// not their MaxAge are deleted when next presented, or by a later sweep
// once MaxAge passes.
func (c *Console) Run(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		c.sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Console) sweep(ctx context.Context) {
	now := c.now()
	c.bySource.sweep(now)
	c.byUser.sweep(now)
	c.byUserSource.sweep(now)
	n, err := c.cfg.Store.DeleteExpiredWebSessions(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("delete expired console sessions", "err", err)
		}
		return
	}
	if n > 0 {
		c.log.Debug("deleted expired console sessions", "count", n)
	}
}
