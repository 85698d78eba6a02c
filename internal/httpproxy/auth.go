package httpproxy

import (
	"context"
	"net/netip"

	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/policy"
	"github.com/portcullis/portcullis/internal/signin"
)

// checkLogin checks a user name and password given to an intercepted
// vSphere login (package signin: the gateway password or the directory's,
// then a verification code as the password's last six digits when the
// user or a proxy policy for the target asks one), and then that the
// subject is covered by a proxy policy for the target. Each request is
// authorized later, on its own.
func (s *Server) checkLogin(ctx context.Context, target, name, pw string, src netip.Addr) signin.Result {
	res := s.signin.Check(ctx, signin.Attempt{User: name, Password: pw, Addr: src, Source: src.String(), Via: "http",
		CodeRequired: func(snap *inventory.Snapshot, id inventory.Identity, groups []string) bool {
			d := snap.Engine.DecideHTTP(policy.Request{Kind: id.Kind, Subject: id.Name, Target: target, Source: src, Groups: groups})
			return d.Allow && d.RequireMFA
		}})
	if !res.OK {
		return res
	}
	d := s.cfg.Snapshot().Engine.DecideHTTP(policy.Request{Kind: res.Ident.Kind, Subject: name, Target: target, Source: src, Groups: res.Groups})
	if !d.Allow {
		res.OK, res.Why, res.Tell = false, d.Reason, d.Reason
	}
	return res
}
