package sshgate

import (
	"context"

	"github.com/portcullis/portcullis/internal/jit"
	"github.com/portcullis/portcullis/internal/policy"
)

// jitHint is what a user refused access is told when a jit policy lets
// them request it: the exact command to run. Empty otherwise, so that a
// refusal says nothing more to anyone else.
func (c *conn) jitHint() string {
	if c.ident.Kind != policy.SubjectUser {
		return ""
	}
	groups, err := c.directoryGroups()
	if err != nil {
		return ""
	}
	opts := c.srv.cfg.Snapshot().Engine.JITOptions(policy.Request{Kind: c.ident.Kind, Subject: c.ident.Name, Target: c.login.Target, Groups: groups})
	if len(opts) == 0 {
		return ""
	}
	return "\r\nYou may request just-in-time access (jit policy " + opts[0].Policy + "); run:\r\n  " +
		jit.RequestCommand(c.login.Target, c.login.Account)
}

// jitUsed records, in the request's history, that a session relied on a
// just-in-time grant.
func (c *conn) jitUsed(d policy.Decision, session string) {
	if c.srv.cfg.JITUsed != nil {
		c.srv.cfg.JITUsed(context.WithoutCancel(c.ctx), d.JIT.Request, session, "ssh")
	}
}
