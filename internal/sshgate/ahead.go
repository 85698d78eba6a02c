package sshgate

import (
	"context"
	"errors"
	"net/netip"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/loginstr"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/upstream"
)

// A connection made ahead: the target a client names is known from its
// login string at its first authentication request, so the gateway can
// connect to it (TCP, key exchange, host-key check) while the client
// finishes authenticating, instead of after its first request. The
// connection waits before any credential (upstream.Pending); the first
// authorized request that means the same target and target user logs it
// in with the credential it would have dialed with (loginAhead).
//
// Bounds, since the client is not authenticated yet when it starts: only
// for a key registered to a user whom some policy lets reach the target
// as one known target user; only for a target whose host key is pinned or
// already learned (nothing is learned or audited ahead); one per client
// connection and maxAhead at once, none while the pre-authentication pool
// is past its start threshold (preAuthPool.takeAhead). A client that does
// not log in, or never makes a request, has it closed.

// aheadActions are the actions whose target users a connection made ahead
// may be for.
var aheadActions = []string{resource.ActionShell, resource.ActionExec, resource.ActionFileTransfer, resource.ActionTunnel}

// dialAhead starts a connection to login's target for id, or returns nil
// when the bounds above do not allow one.
func (s *Server) dialAhead(ctx context.Context, entry *preAuthEntry, snap *inventory.Snapshot, id inventory.Identity,
	login loginstr.Login, src netip.Addr) *upstream.Pending {
	target := snap.Engine.Target(login.Target)
	if target == nil || s.cfg.HostKeys == nil {
		return nil
	}
	tu := aheadTargetUser(snap, id, login, src)
	if tu == "" || !s.preAuth.takeAhead(entry) {
		return nil
	}
	p, err := upstream.Prepare(ctx, upstream.Config{Target: target, User: tu, HostKeys: s.cfg.HostKeys,
		Timeout: s.cfg.DialTimeout}, s.cfg.AuthTimeout)
	if err != nil {
		s.cfg.Log.Debug("no connection made ahead", "target", target.Name, "err", err)
		return nil
	}
	return p
}

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
	c.srv.preAuth.aheadUsed.Add(1)
	return sc, chans, reqs, true, nil
}
