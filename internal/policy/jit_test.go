package policy

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
)

// jitSite has erin, who reaches web1 as deploy only through JIT grants,
// frank, who already reaches web1 as deploy through a standing policy
// whose command rules deny rm, and a jit policy for both.
func jitSite(grants ...*resource.Policy) Input {
	in := Input{
		Users:    []*resource.User{{Name: "erin"}, {Name: "frank", Groups: []string{"sre"}}, {Name: "gina", Groups: []string{"leads"}}},
		Targets:  []*resource.Target{{Name: "web1", Address: "10.0.0.1:22"}, {Name: "pg1", Address: "10.0.0.9:5432", Protocol: "postgres"}},
		Accounts: []*resource.Account{{Target: "web1", Name: "deploy"}, {Target: "web1", Name: "root"}, {Target: "pg1", Name: "app"}},
		Policies: []*resource.Policy{
			{Name: "standing", Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Users: []string{"frank"}},
				Targets: resource.TargetSelector{Names: []string{"web1"}}, TargetUsers: []string{"deploy"}, Actions: []string{"shell", "exec"},
				Commands: &resource.CommandRules{Deny: []string{"^rm "}}},
			{Name: "web-child", Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Groups: []string{"nobody"}},
				Targets: resource.TargetSelector{Names: []string{"web1"}}, TargetUsers: []string{"deploy", "root"}, Actions: []string{"shell", "exec"}},
			{Name: "web-jit", Type: resource.PolicyJIT, Subjects: resource.Subjects{Users: []string{"erin", "frank"}},
				ChildPolicies: []string{"web-child"}, Duration: resource.Duration(time.Hour),
				Approvers: &resource.Approvers{Users: []string{"frank"}, Groups: []string{"leads"}}},
		},
	}
	in.Policies = append(in.Policies, grants...)
	return in
}

var jitNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// grant is a JIT-xxxxxxxx policy as package jit makes it.
func grant(name, subject, approval string, d time.Duration, maxSession time.Duration) *resource.Policy {
	until := jitNow.Add(d)
	return &resource.Policy{Name: name, Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Users: []string{subject}},
		Targets: resource.TargetSelector{Names: []string{"web1"}}, TargetUsers: []string{"deploy"}, Actions: []string{"shell", "exec"},
		ValidUntil: &until, MaxSession: resource.Duration(maxSession),
		JITGrant: &resource.JITGrant{Request: "req-" + name, JITPolicy: "web-jit", Approval: approval, Duration: resource.Duration(d)}}
}

// TestJITPrecedence is the seed's precedence table: a JIT grant never
// overrides other access; manual before automatic; the shortest first.
func TestJITPrecedence(t *testing.T) {
	m5 := grant("JIT-manual05", "erin", resource.ApprovalManual, 5*time.Minute, time.Minute)
	m10 := grant("JIT-manual10", "erin", resource.ApprovalManual, 10*time.Minute, 2*time.Minute)
	a5 := grant("JIT-aaauto05", "erin", resource.ApprovalAuto, 5*time.Minute, 3*time.Minute)
	a10 := grant("JIT-aaauto10", "erin", resource.ApprovalAuto, 10*time.Minute, 4*time.Minute)
	fr := grant("JIT-frank001", "frank", resource.ApprovalManual, 5*time.Minute, time.Minute)
	for _, c := range []struct {
		name    string
		grants  []*resource.Policy
		subject string
		command string
		want    string // deciding policy; "" for a denial
	}{
		{"no grant", nil, "erin", "", ""},
		{"manual 5 beats manual 10", []*resource.Policy{m10, m5}, "erin", "", "JIT-manual05"},
		{"manual 10 beats auto 5", []*resource.Policy{a5, m10}, "erin", "", "JIT-manual10"},
		{"auto 5 beats auto 10", []*resource.Policy{a10, a5}, "erin", "", "JIT-aaauto05"},
		{"all four", []*resource.Policy{a10, a5, m10, m5}, "erin", "", "JIT-manual05"},
		{"auto only", []*resource.Policy{a10}, "erin", "", "JIT-aaauto10"},
		{"standing access wins over a grant", []*resource.Policy{fr}, "frank", "", "standing"},
		// The grant has no command rules; frank's standing policy denies
		// rm. The grant must not lift that rule.
		{"a grant does not lift standing command rules", []*resource.Policy{fr}, "frank", "rm -rf /srv", ""},
		{"expired grant", []*resource.Policy{grant("JIT-expired1", "erin", resource.ApprovalManual, -time.Minute, 0)}, "erin", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := Compile(jitSite(c.grants...))
			if err != nil {
				t.Fatal(err)
			}
			action := resource.ActionShell
			if c.command != "" {
				action = resource.ActionExec
			}
			d := e.Decide(Request{Subject: c.subject, Target: "web1", TargetUser: "deploy", Action: action, Command: c.command,
				Source: netip.MustParseAddr("10.1.1.1"), Now: jitNow})
			if got := map[bool]string{true: d.Policy, false: ""}[d.Allow]; got != c.want {
				t.Fatalf("decided by %q (%s), want %q", got, d.Reason, c.want)
			}
			if d.Allow && strings.HasPrefix(d.Policy, "JIT-") {
				// The winner's own obligations apply, not a mix.
				g := map[string]*resource.Policy{m5.Name: m5, m10.Name: m10, a5.Name: a5, a10.Name: a10}[d.Policy]
				if d.JIT == nil || d.MaxSession != g.MaxSession.Std() || !d.NotAfter.Equal(*g.ValidUntil) {
					t.Fatalf("obligations %+v jit %+v, want those of %s", d.Obligations, d.JIT, d.Policy)
				}
			}
		})
	}
}

func TestJITOptionsAndApprovers(t *testing.T) {
	e, err := Compile(jitSite())
	if err != nil {
		t.Fatal(err)
	}
	opts := e.JITOptions(Request{Subject: "erin", Target: "web1"})
	if len(opts) != 1 || opts[0].Policy != "web-jit" || opts[0].MaxDuration != time.Hour {
		t.Fatalf("options %+v", opts)
	}
	for _, c := range []struct {
		subject, target string
		want            int
	}{{"erin", "pg1", 0}, {"gina", "web1", 0}, {"nobody", "web1", 0}} {
		if got := e.JITOptions(Request{Subject: c.subject, Target: c.target}); len(got) != c.want {
			t.Errorf("%s on %s: %+v", c.subject, c.target, got)
		}
	}
	for _, c := range []struct {
		user  string
		extra []string
		want  bool
	}{{"frank", nil, true}, {"gina", nil, true}, {"erin", nil, false}, {"erin", []string{"leads"}, true}, {"ghost", nil, false}} {
		if got := e.MayApprove("web-jit", c.user, c.extra); got != c.want {
			t.Errorf("MayApprove(%s, %v) = %v", c.user, c.extra, got)
		}
	}
	if e.MayApprove("web-child", "frank", nil) {
		t.Error("a policy that is not jit has approvers")
	}
}

func TestJITExplain(t *testing.T) {
	e, err := Compile(jitSite(grant("JIT-manual05", "erin", resource.ApprovalManual, 5*time.Minute, 0),
		grant("JIT-aaauto10", "erin", resource.ApprovalAuto, 10*time.Minute, 0)))
	if err != nil {
		t.Fatal(err)
	}
	r := Request{Subject: "erin", Target: "web1", TargetUser: "deploy", Action: resource.ActionShell, AnySource: true, Now: jitNow}
	d, steps := e.Explain(r)
	if !d.Allow || d.Policy != "JIT-manual05" {
		t.Fatalf("decision %+v", d)
	}
	got := map[string]Step{}
	for _, s := range steps {
		got[s.Policy] = s
	}
	if s := got["JIT-manual05"]; s.Outcome != "grants" || !strings.Contains(s.Why, "just-in-time grant of request req-JIT-manual05 under jit policy web-jit") {
		t.Errorf("winner step %+v", s)
	}
	if s := got["JIT-aaauto10"]; s.Outcome != "superseded" {
		t.Errorf("loser step %+v", s)
	}
	r.Now = jitNow.Add(time.Hour)
	d, steps = e.Explain(r)
	if d.Allow {
		t.Fatalf("allowed after the grants ended: %+v", d)
	}
	found := false
	for _, s := range steps {
		if s.Policy == "web-jit" && s.Outcome == "may request" && strings.Contains(s.Why, "portcullis jit request --target web1") {
			found = true
		}
	}
	if !found {
		t.Errorf("no jit step: %+v", steps)
	}
}

// TestJITProxyGrant: a JIT grant of a proxy child is honoured by
// DecideProxy (the PostgreSQL front's question), with the same precedence.
func TestJITProxyGrant(t *testing.T) {
	until := jitNow.Add(time.Hour)
	pg := func(name, subject, approval string, d time.Duration, dbs ...string) *resource.Policy {
		u := jitNow.Add(d)
		return &resource.Policy{Name: name, Type: resource.PolicyProxy, Subjects: resource.Subjects{Users: []string{subject}},
			Targets: resource.TargetSelector{Names: []string{"pg1"}}, TargetUsers: []string{"app"}, Databases: dbs, ValidUntil: &u,
			JITGrant: &resource.JITGrant{Request: "req-" + name, JITPolicy: "pg-jit", Approval: approval, Duration: resource.Duration(d)}}
	}
	standing := &resource.Policy{Name: "frank-pg", Type: resource.PolicyProxy, Subjects: resource.Subjects{Users: []string{"frank"}},
		Targets: resource.TargetSelector{Names: []string{"pg1"}}, TargetUsers: []string{"app"}, Databases: []string{"reports"}, ValidUntil: &until}
	for _, c := range []struct {
		name     string
		policies []*resource.Policy
		subject  string
		database string
		want     string
	}{
		{"no grant", nil, "erin", "orders", ""},
		{"grant", []*resource.Policy{pg("JIT-pgauto10", "erin", resource.ApprovalAuto, 10*time.Minute)}, "erin", "orders", "JIT-pgauto10"},
		{"manual beats auto", []*resource.Policy{pg("JIT-pgauto05", "erin", resource.ApprovalAuto, 5*time.Minute), pg("JIT-pgman010", "erin", resource.ApprovalManual, 10*time.Minute)}, "erin", "orders", "JIT-pgman010"},
		// Precedence is among the grants that cover the request.
		{"a grant not covering the database does not compete", []*resource.Policy{pg("JIT-pgman005", "erin", resource.ApprovalManual, 5*time.Minute, "reports"), pg("JIT-pgauto01", "erin", resource.ApprovalAuto, time.Minute)}, "erin", "orders", "JIT-pgauto01"},
		{"only the manual grant covers", []*resource.Policy{pg("JIT-pgman005", "erin", resource.ApprovalManual, 5*time.Minute, "reports"), pg("JIT-pgauto01", "erin", resource.ApprovalAuto, time.Minute, "reports")}, "erin", "orders", ""},
		{"standing access wins", []*resource.Policy{standing, pg("JIT-pgfrank1", "frank", resource.ApprovalManual, 5*time.Minute)}, "frank", "reports", "frank-pg"},
		{"a grant adds a database standing access lacks", []*resource.Policy{standing, pg("JIT-pgfrank1", "frank", resource.ApprovalManual, 5*time.Minute)}, "frank", "orders", "JIT-pgfrank1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := Compile(jitSite(c.policies...))
			if err != nil {
				t.Fatal(err)
			}
			d := e.DecideProxy(Request{Subject: c.subject, Target: "pg1", TargetUser: "app", Database: c.database,
				Source: netip.MustParseAddr("10.1.1.1"), Now: jitNow})
			if got := map[bool]string{true: d.Policy, false: ""}[d.Allow]; got != c.want {
				t.Fatalf("decided by %q (%s), want %q", got, d.Reason, c.want)
			}
		})
	}
}

// BenchmarkDecideJIT is a decision that a JIT grant answers while another
// grant competes (preferRegular filters the candidates).
func BenchmarkDecideJIT(b *testing.B) {
	e, err := Compile(jitSite(grant("JIT-manual05", "erin", resource.ApprovalManual, 5*time.Minute, 0),
		grant("JIT-aaauto10", "erin", resource.ApprovalAuto, 10*time.Minute, 0)))
	if err != nil {
		b.Fatal(err)
	}
	r := Request{Subject: "erin", Target: "web1", TargetUser: "deploy", Action: resource.ActionShell, Source: netip.MustParseAddr("10.1.1.1"), Now: jitNow}
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(r); !d.Allow {
			b.Fatal(d.Reason)
		}
	}
}
