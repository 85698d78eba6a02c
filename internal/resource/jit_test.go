package resource

import (
	"strings"
	"testing"
	"time"
)

func TestJITPolicyValidate(t *testing.T) {
	until := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	base := func() *Policy {
		return &Policy{Kind: KindPolicy, Name: "web-jit", Type: PolicyJIT, Subjects: Subjects{Users: []string{"erin"}},
			ChildPolicies: []string{"web"}, Duration: Duration(30 * time.Minute)}
	}
	grant := func() *Policy {
		return &Policy{Kind: KindPolicy, Name: "JIT-ab12cd34", Type: PolicyTargetAccess, Subjects: Subjects{Users: []string{"erin"}},
			Targets: TargetSelector{Names: []string{"web1"}}, TargetUsers: []string{"deploy"}, Actions: []string{"shell"}, ValidUntil: &until,
			JITGrant: &JITGrant{Request: "req-1", JITPolicy: "web-jit", Approval: ApprovalManual, Duration: Duration(time.Hour)}}
	}
	for _, c := range []struct {
		name   string
		mutate func(p *Policy) *Policy
		want   string // "" for valid
	}{
		{"minimal", func(p *Policy) *Policy { return p }, ""},
		{"max and approvers", func(p *Policy) *Policy {
			p.MaxDuration, p.RequireReason = Duration(4*time.Hour), true
			p.Approvers = &Approvers{Users: []string{"frank"}, Groups: []string{"leads"}}
			return p
		}, ""},
		{"fourteen days", func(p *Policy) *Policy { p.MaxDuration = Duration(14 * 24 * time.Hour); return p }, ""},
		{"fifteen days", func(p *Policy) *Policy { p.MaxDuration = Duration(15 * 24 * time.Hour); return p }, "max_duration"},
		{"seconds", func(p *Policy) *Policy { p.Duration = Duration(90 * time.Second); return p }, "whole number of minutes"},
		{"max below default", func(p *Policy) *Policy { p.MaxDuration = Duration(10 * time.Minute); return p }, "shorter than duration"},
		{"bad approver", func(p *Policy) *Policy { p.Approvers = &Approvers{Users: []string{"a b"}}; return p }, "approvers.users[0]"},
		{"approvers on target-access", func(p *Policy) *Policy {
			g := grant()
			g.Approvers = &Approvers{Users: []string{"frank"}}
			return g
		}, "approvers"},
		{"grant", func(*Policy) *Policy { return grant() }, ""},
		{"reserved name", func(*Policy) *Policy { g := grant(); g.JITGrant = nil; return g }, "reserved"},
		{"reserved name, any case", func(*Policy) *Policy { g := grant(); g.JITGrant, g.Name = nil, "jit-ab12cd34"; return g }, "reserved"},
		{"grant without the name", func(*Policy) *Policy { g := grant(); g.Name = "ab12cd34"; return g }, "jit_grant"},
		{"grant without end", func(*Policy) *Policy { g := grant(); g.ValidUntil = nil; return g }, "valid_until"},
		{"grant bad approval", func(*Policy) *Policy { g := grant(); g.JITGrant.Approval = "maybe"; return g }, "jit_grant.approval"},
		{"grant on a jit policy", func(p *Policy) *Policy { p.JITGrant = grant().JITGrant; return p }, "jit_grant"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.mutate(base()).Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
}
