package policy

import (
	"net/netip"
	"testing"

	"github.com/portcullis/portcullis/internal/resource"
)

// TestSecondFactor: who is asked a code when connecting, and the matching
// RequireMFA obligation on requests.
func TestSecondFactor(t *testing.T) {
	ta := func(name string, mod func(p *resource.Policy)) *resource.Policy {
		p := &resource.Policy{Name: name, Type: resource.PolicyTargetAccess,
			Targets: resource.TargetSelector{Names: []string{"web1"}}, TargetUsers: []string{"root"}, Actions: []string{"exec"}}
		mod(p)
		return p
	}
	e := mustCompile(t, Input{
		Users: []*resource.User{{Name: "req", MFA: "required"}, {Name: "ops1", Groups: []string{"ops"}},
			{Name: "plain"}, {Name: "reqauto", MFA: "required"}},
		ServiceAccounts: []*resource.ServiceAccount{{Name: "bot"}, {Name: "bot2"}},
		Targets:         []*resource.Target{{Name: "web1", Auth: "certificate"}, {Name: "web2", Auth: "certificate"}},
		Policies: []*resource.Policy{
			ta("mfa-ops", func(p *resource.Policy) {
				p.Subjects.Groups = []string{"ops"}
				p.Subjects.ServiceAccounts = []string{"bot", "bot2"}
				p.RequireMFA = true
			}),
			ta("plain-web", func(p *resource.Policy) { p.Subjects.Users = []string{"plain", "req"} }),
			ta("bot-auto", func(p *resource.Policy) {
				p.Subjects.ServiceAccounts = []string{"bot"}
				p.Subjects.Users = []string{"reqauto"}
				p.SourceCIDRs = []string{"10.0.0.0/8"}
				p.Autologin = true
			}),
		},
	})
	inside, outside := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.0.2.1")
	for _, c := range []struct {
		name    string
		kind    SubjectKind
		subject string
		target  string
		source  netip.Addr
		want    bool
		reason  string
	}{
		{"user mfa: required", SubjectUser, "req", "web1", outside, true, "user mfa: required"},
		{"user mfa: required, target unknown", SubjectUser, "req", "nope", outside, true, "user mfa: required"},
		{"user mfa: required beats autologin", SubjectUser, "reqauto", "web1", inside, true, "user mfa: required"},
		{"group policy requires", SubjectUser, "ops1", "web1", outside, true, "policy mfa-ops"},
		{"policy on another target", SubjectUser, "ops1", "web2", outside, false, ""},
		{"no requirement", SubjectUser, "plain", "web1", outside, false, ""},
		{"service account, autologin network", SubjectServiceAccount, "bot", "web1", inside, false, ""},
		{"service account, outside autologin network", SubjectServiceAccount, "bot", "web1", outside, true, "policy mfa-ops"},
		{"service account without autologin", SubjectServiceAccount, "bot2", "web1", inside, true, "policy mfa-ops"},
		{"unknown subject", SubjectUser, "ghost", "web1", inside, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := e.SecondFactor(Request{Kind: c.kind, Subject: c.subject, Target: c.target, Source: c.source})
			if got.Required != c.want || got.Reason != c.reason {
				t.Errorf("SecondFactor = %+v, want required %v reason %q", got, c.want, c.reason)
			}
		})
	}
	for _, c := range []struct {
		name          string
		kind          SubjectKind
		subject       string
		source        netip.Addr
		mfa, autologn bool
	}{
		{"granted by a require_mfa policy", SubjectUser, "ops1", outside, true, false},
		{"granted without one", SubjectUser, "plain", outside, false, false},
		{"granted by both, autologin too", SubjectServiceAccount, "bot", inside, true, true},
	} {
		t.Run("obligation "+c.name, func(t *testing.T) {
			d := e.Decide(Request{Kind: c.kind, Subject: c.subject, Action: "exec", Target: "web1", TargetUser: "root", Source: c.source})
			if !d.Allow || d.RequireMFA != c.mfa || d.Autologin != c.autologn {
				t.Errorf("Decide = %+v, want allow, RequireMFA %v, Autologin %v", d, c.mfa, c.autologn)
			}
		})
	}
	if !e.UserRequiresMFA("req") || e.UserRequiresMFA("plain") || e.UserRequiresMFA("ghost") {
		t.Error("UserRequiresMFA does not follow mfa: required")
	}
}
