package sshgate

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/loginstr"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/upstream"
)

// A connection made ahead: the target a client names is known from its
// login string, so once the client has proved it holds a registered key,
// the gateway connects to the target (TCP, key exchange, host-key check)
// while the client opens its channel and sends its first request, instead
// of after. The connection waits before any credential
// (upstream.Pending); the first authorized request that means the same
// target and target user logs it in with the credential it would have
// dialed with (loginAhead). Anything else closes it and dials as before.
//
// Why not earlier, at the client's first key offer: a public key is no
// secret, so anyone could then make the gateway open connections it
// throws away, and OpenSSH 9.8+ counts each such connection against the
// gateway's address (PerSourcePenalties noauth), until the target refuses
// the gateway for everyone. For the same reason connections thrown away
// are budgeted per target (aheadBudget), so an authenticated user looping
// on logins without requests cannot do it either.
//
// Only for a local user or service account whom some policy lets reach the
// target as one known target user, and a target whose host key is pinned
// or already learned (nothing is learned or audited ahead).

// aheadActions are the actions whose target users a connection made ahead
// may be for.
var aheadActions = []string{resource.ActionShell, resource.ActionExec, resource.ActionFileTransfer, resource.ActionTunnel}

// Budget of connections made ahead per target: aheadBurst at once, then
// one per aheadRefill. A connection a request logs in gives its place
// back; one thrown away keeps it. OpenSSH's default penalty is 1 s per
// connection that ends unauthenticated, and it refuses a source from 15 s
// of penalty on: this stays far below.
const (
	aheadBurst  = 8
	aheadRefill = 10 * time.Second
)

// aheadBudget holds the per-target budgets of connections made ahead, and
// counts them for the diagnostics and tests. The zero value is ready.
type aheadBudget struct {
	made, used atomic.Int64

	mu      sync.Mutex
	targets map[string]*aheadTokens
	now     func() time.Time // time.Now unless a test sets it
}

type aheadTokens struct {
	tokens float64
	at     time.Time
}

// take takes a place for a connection made ahead to target, if its
// budget has one.
func (b *aheadBudget) take(target string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.now != nil {
		now = b.now()
	}
	if b.targets == nil {
		b.targets = map[string]*aheadTokens{}
	}
	t := b.targets[target]
	if t == nil {
		t = &aheadTokens{tokens: aheadBurst, at: now}
		b.targets[target] = t
	}
	if d := now.Sub(t.at); d > 0 {
		t.tokens = min(aheadBurst, t.tokens+float64(d)/float64(aheadRefill))
		t.at = now
	}
	if t.tokens < 1 {
		return false
	}
	t.tokens--
	b.made.Add(1)
	return true
}

// giveBack returns the place of a connection made ahead that a request
// logged in.
func (b *aheadBudget) giveBack(target string) {
	b.used.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.targets[target]; t != nil {
		t.tokens = min(aheadBurst, t.tokens+1)
	}
}

// dialAhead starts a connection to login's target for its user, or returns
// nil when the bounds above do not allow one.
func (s *Server) dialAhead(ctx context.Context, snap *inventory.Snapshot, login loginstr.Login, src netip.Addr) *upstream.Pending {
	target := snap.Engine.Target(login.Target)
	if target == nil || s.cfg.HostKeys == nil {
		return nil
	}
	id, ok := snap.Identity(login.User)
	if !ok {
		return nil
	}
	tu := aheadTargetUser(snap, id, login, src)
	if tu == "" || !s.ahead.take(target.Name) {
		return nil
	}
	p, err := upstream.Prepare(ctx, upstream.Config{Target: target, User: tu, HostKeys: s.cfg.HostKeys,
		Timeout: s.cfg.DialTimeout, Agents: s.cfg.Agents}, aheadWait)
	if err != nil {
		s.cfg.Log.Debug("no connection made ahead", "target", target.Name, "err", err)
		return nil
	}
	return p
}

// aheadWait bounds how long a connection made ahead waits for its first
// request after its handshake: about what a client takes from login to
// its first request, and far below sshd's LoginGraceTime (120 s).
const aheadWait = 30 * time.Second

// aheadTargetUser returns the target user a connection made ahead logs in
// as: the account the login string names, if some policy grants it, or
// else the only target user the policies grant id on the target; "" when
// no single one is known before a request.
func aheadTargetUser(snap *inventory.Snapshot, id inventory.Identity, login loginstr.Login, src netip.Addr) string {
	req := policy.Request{Kind: id.Kind, Subject: id.Name, Target: login.Target, TargetUser: login.Account, Source: src}
	if login.Account != "" {
		for _, a := range aheadActions {
			req.Action = a
			if snap.Engine.Grants(req) {
				return login.Account
			}
		}
		return ""
	}
	user := ""
	for _, a := range aheadActions {
		req.Action = a
		for _, u := range snap.Engine.Decide(req).TargetUsers {
			if user != "" && u != user {
				return ""
			}
			user = u
		}
	}
	return user
}

// loginAhead logs in the connection made ahead, if there is one that
// means target as targetUser, with signer. ok reports that it returned a
// connection or the target's answer to the credential (err); with neither,
// the caller dials anew: there was no connection made ahead, it meant
// another target or user, the login provisions the account first (sshd
// looks a user up once per connection), or it failed before the
// credential was offered (upstream.ErrNotUsed).
func (c *conn) loginAhead(target *resource.Target, targetUser string, ob policy.Obligations, signer ssh.Signer) (
	sc ssh.Conn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, ok bool, err error) {
	p := c.takeAhead()
	if p == nil {
		return nil, nil, nil, false, nil
	}
	if ob.Provision || !p.Matches(target, targetUser) {
		p.Close()
		return nil, nil, nil, false, nil
	}
	sc, chans, reqs, err = p.Login(signer)
	switch {
	case errors.Is(err, upstream.ErrNotUsed):
		c.srv.cfg.Log.Debug("connection made ahead not used", "session", c.id, "target", target.Name, "err", err)
		return nil, nil, nil, false, nil
	case errors.Is(err, upstream.ErrUnreachable):
		return nil, nil, nil, true, targetDownError{err}
	case err != nil:
		return nil, nil, nil, true, err
	}
	c.srv.ahead.giveBack(target.Name)
	return sc, chans, reqs, true, nil
}
