package sshgate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/policy"
)

// SSOLogin lets a user linked to a single sign-on provider account
// connect without a registered key: keyboard-interactive shows a one-use
// URL, the person signs in at the provider in a browser (the console's
// flow), and answers the prompt once done. The code behind the URL lives
// in the shared store, so any gateway's console may complete it.
type SSOLogin struct {
	// Linked reports whether name is a User linked to a provider account;
	// others are never offered the browser (a directory user is asked
	// their password instead).
	Linked func(ctx context.Context, name string) (bool, error)
	// Begin stores a new one-use sign-in code for user, valid until
	// expires, and returns it with the URL the person opens.
	Begin func(ctx context.Context, user string, expires time.Time) (code, url string, err error)
	// Done reports whether the browser sign-in of code finished for a
	// provider account linked to user; true consumes the code.
	Done func(ctx context.Context, code, user string) (bool, error)
	// Cache is how long a finished sign-in lets the same user from the
	// same source address connect again without the browser; 0 asks
	// every time.
	Cache time.Duration
}

// extSSO marks a single sign-on login and says how it went ("single
// sign-on", "single sign-on (cached)"); the identity is then found by
// name, as there is no key.
const extSSO = "portcullis-sso"

// ssoRounds bounds how often the prompt is repeated while the browser
// sign-in has not finished; AuthTimeout bounds the time.
const ssoRounds = 5

// ssoCache remembers finished sign-ins per user and source address. Its
// mutex is a leaf: no other lock is taken while holding it.
type ssoCache struct {
	mu    sync.Mutex
	until map[ssoCacheKey]time.Time
}

type ssoCacheKey struct {
	user string
	src  netip.Addr
}

// valid reports whether user signed in from src recently enough.
func (c *ssoCache) valid(user string, src netip.Addr, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := ssoCacheKey{user, src}
	until, ok := c.until[k]
	if ok && !now.Before(until) {
		delete(c.until, k)
		return false
	}
	return ok
}

// add remembers a sign-in until until, dropping expired entries so the
// map stays as small as the recent sign-ins.
func (c *ssoCache) add(user string, src netip.Addr, now, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.until == nil {
		c.until = map[ssoCacheKey]time.Time{}
	}
	for k, u := range c.until {
		if !now.Before(u) {
			delete(c.until, k)
		}
	}
	c.until[ssoCacheKey{user, src}] = until
}

// ssoAuth is what a single sign-on needs from the connection's handshake.
type ssoAuth struct {
	srv    *Server
	ctx    context.Context
	connID string
	src    netip.Addr
	srcStr string
	// deadline is the connection's authentication deadline: the code
	// expires with it.
	deadline time.Time
	// parse returns the connection's login string, parsed once.
	parse func(meta ssh.ConnMetadata) (user, target, account string, err error)
}

// applies reports whether the login names a user the browser sign-in is
// for.
func (a *ssoAuth) applies(user string) (bool, error) {
	linked, err := a.srv.cfg.SSO.Linked(a.ctx, user)
	if err != nil {
		return false, fmt.Errorf("check single sign-on link of %q: %w", user, err)
	}
	return linked, nil
}

// keyboardInteractive runs the browser sign-in: see SSOLogin.
func (a *ssoAuth) keyboardInteractive(meta ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
	user, target, account, err := a.parse(meta)
	if err != nil {
		return nil, err
	}
	sl := a.srv.cfg.SSO
	snap := a.srv.cfg.Snapshot()
	id, ok := snap.Identity(user)
	if !ok || id.Kind != policy.SubjectUser {
		return nil, fmt.Errorf("single sign-on: %q is not a user", user)
	}
	how := "single sign-on"
	if sl.Cache > 0 && a.srv.sso.valid(user, a.src, time.Now()) {
		how = "single sign-on (cached)"
	} else {
		code, url, err := sl.Begin(a.ctx, user, a.deadline)
		if err != nil {
			a.srv.cfg.Log.Error("start single sign-on", "user", user, "err", err)
			return nil, &ssh.BannerError{Err: err, Message: "portcullis: single sign-on is unavailable now; try again later\r\n"}
		}
		// OpenSSH shows the instruction on the terminal but gives only the
		// prompt to SSH_ASKPASS: the URL is in both.
		instruction := "Sign in at " + url
		prompt := "Press Enter once signed in at " + url + ": "
		done := false
		for range ssoRounds {
			answers, err := client("", instruction, []string{prompt}, []bool{true})
			if err != nil {
				return nil, fmt.Errorf("single sign-on prompt: %w", err)
			}
			if len(answers) != 1 {
				return nil, fmt.Errorf("single sign-on prompt: %d answers to one prompt", len(answers))
			}
			if done, err = sl.Done(a.ctx, code, user); err != nil {
				a.srv.cfg.Log.Error("check single sign-on", "user", user, "err", err)
				return nil, &ssh.BannerError{Err: err, Message: "portcullis: single sign-on cannot be checked now; try again later\r\n"}
			}
			if done {
				break
			}
			instruction = "Not signed in yet. Sign in at " + url
		}
		if !done {
			return nil, errors.New("single sign-on did not finish")
		}
		if sl.Cache > 0 {
			now := time.Now()
			a.srv.sso.add(user, a.src, now, now.Add(sl.Cache))
		}
	}
	if err := a.srv.available(); err != nil {
		return nil, err
	}
	ext := map[string]string{extIdentity: id.Name, extSSO: how}
	sf := snap.Engine.SecondFactor(policy.Request{Kind: id.Kind, Subject: id.Name, Target: target,
		TargetUser: account, Source: a.src})
	if !sf.Required {
		return &ssh.Permissions{Extensions: ext}, nil
	}
	return nil, &ssh.PartialSuccessError{Next: ssh.ServerAuthCallbacks{
		KeyboardInteractiveCallback: a.srv.askCode(a.ctx, secondFactorAsk{ident: id, ext: ext, reason: sf.Reason,
			src: a.src, srcStr: a.srcStr, sessionID: a.connID}),
	}}
}
