package policy

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
)

func ts(s string) *time.Time {
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &v
}

// engine for the tests below: alice in group ops; web1 reachable by two
// policies, one of which denies reboots; a time-boxed policy on web2; a
// recording policy on web1 for ops with input.
func obligationsEngine(t *testing.T) *Engine {
	return mustCompile(t, Input{
		Users:   []*resource.User{{Name: "alice", Groups: []string{"ops"}}},
		Targets: []*resource.Target{{Name: "web1", Auth: "certificate"}, {Name: "web2", Auth: "certificate"}},
		Policies: []*resource.Policy{
			{Name: "a-broad", Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Users: []string{"alice"}},
				Targets: resource.TargetSelector{Names: []string{"web1"}}, TargetUsers: []string{"root"},
				Actions: []string{"shell", "exec"}, MaxSession: resource.Duration(time.Hour), IdleTimeout: resource.Duration(10 * time.Minute)},
			{Name: "b-no-reboot", Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Groups: []string{"ops"}},
				Targets: resource.TargetSelector{Names: []string{"web1"}}, TargetUsers: []string{"root"},
				Actions: []string{"shell", "exec"}, Commands: &resource.CommandRules{Deny: []string{`^(sudo )?reboot\b`}}},
			{Name: "c-window", Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Users: []string{"alice"}},
				Targets: resource.TargetSelector{Names: []string{"web2"}}, TargetUsers: []string{"root"}, Actions: []string{"exec"},
				ValidFrom: ts("2026-01-01T00:00:00Z"), ValidUntil: ts("2026-02-01T00:00:00Z")},
			{Name: "rec-ops", Type: resource.PolicySessionRecording, Subjects: resource.Subjects{Groups: []string{"ops"}},
				Targets: resource.TargetSelector{Names: []string{"web1"}}, RecordInput: true},
			{Name: "rec-all", Type: resource.PolicySessionRecording, Subjects: resource.Subjects{Users: []string{"alice"}},
				Targets: resource.TargetSelector{Names: []string{"web1", "web2"}}},
		},
	})
}

func TestDenyWinsAcrossPolicies(t *testing.T) {
	e := obligationsEngine(t)
	req := Request{Kind: SubjectUser, Subject: "alice", Action: "exec", Target: "web1", TargetUser: "root", Source: netip.MustParseAddr("10.0.0.1")}
	req.Command = "uptime"
	if d := e.Decide(req); !d.Allow || d.Policy != "a-broad" {
		t.Fatalf("uptime: %+v", d)
	}
	// a-broad alone would allow it; b-no-reboot's deny wins.
	req.Command = "sudo reboot now"
	if d := e.Decide(req); d.Allow || !strings.Contains(d.Reason, "command denied by policy b-no-reboot") {
		t.Fatalf("reboot: %+v", d)
	}
	// The same rules apply to a line entered in a shell.
	req.Action, req.Command = "shell", "reboot"
	if d := e.Decide(req); d.Allow {
		t.Fatalf("reboot line in shell allowed: %+v", d)
	}
}

func TestObligations(t *testing.T) {
	e := obligationsEngine(t)
	d := e.Decide(Request{Kind: SubjectUser, Subject: "alice", Action: "shell", Target: "web1", TargetUser: "root"})
	want := Obligations{MaxSession: time.Hour, IdleTimeout: 10 * time.Minute, CheckCommands: true,
		Record: true, RecordInput: true, RecordingPolicy: "rec-all"}
	if !d.Allow || d.Obligations != want {
		t.Fatalf("shell on web1:\n got %+v\nwant %+v", d.Obligations, want)
	}
}

func TestValidityWindow(t *testing.T) {
	e := obligationsEngine(t)
	req := Request{Kind: SubjectUser, Subject: "alice", Action: "exec", Target: "web2", TargetUser: "root", Command: "id"}
	for _, tt := range []struct {
		now   string
		allow bool
	}{
		{"2025-12-31T23:59:59Z", false},
		{"2026-01-01T00:00:00Z", true},
		{"2026-01-31T23:59:59Z", true},
		{"2026-02-01T00:00:00Z", false},
	} {
		req.Now = *ts(tt.now)
		d := e.Decide(req)
		if d.Allow != tt.allow {
			t.Errorf("at %s: %+v, want allow=%v", tt.now, d, tt.allow)
		}
		if !tt.allow && !strings.Contains(d.Reason, "outside its validity window") {
			t.Errorf("at %s: reason %q", tt.now, d.Reason)
		}
		if tt.allow && !d.NotAfter.Equal(*ts("2026-02-01T00:00:00Z")) {
			t.Errorf("at %s: NotAfter %v, want the end of the window", tt.now, d.NotAfter)
		}
		if tt.allow && (d.Record != true || d.RecordInput) {
			t.Errorf("at %s: recording obligations %+v (web2: output only)", tt.now, d.Obligations)
		}
	}
}

func TestExplain(t *testing.T) {
	e := obligationsEngine(t)
	d, steps := e.Explain(Request{Kind: SubjectUser, Subject: "alice", Action: "exec", Target: "web1", TargetUser: "root", Command: "reboot"})
	if d.Allow {
		t.Fatalf("allowed: %+v", d)
	}
	got := map[string]string{}
	for _, s := range steps {
		got[s.Policy] = s.Outcome + ": " + s.Why
	}
	for policy, want := range map[string]string{
		"a-broad":     "grants: grants exec on web1",
		"b-no-reboot": "denies: command denied by policy b-no-reboot",
		"c-window":    "no match: does not cover target web1",
		"rec-ops":     "records: records output and input",
	} {
		if !strings.HasPrefix(got[policy], want) {
			t.Errorf("step %s = %q, want prefix %q", policy, got[policy], want)
		}
	}
	_, steps = e.Explain(Request{Kind: SubjectUser, Subject: "nobody", Action: "exec", Target: "web1"})
	if len(steps) != 1 || !strings.Contains(steps[0].Why, `no user or service account is called "nobody"`) {
		t.Fatalf("unknown subject steps: %+v", steps)
	}
}

// With several granting policies the strictest limits apply, the answer
// names the first granting policy by name, and an operation matched by any
// of them is named.
func TestSeveralGrantingPolicies(t *testing.T) {
	pol := func(name string, max time.Duration, allow ...string) *resource.Policy {
		p := &resource.Policy{Name: name, Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Groups: []string{"ops"}},
			Targets: resource.TargetSelector{Names: []string{"web1"}}, TargetUsers: []string{"root"},
			Actions: []string{"exec"}, MaxSession: resource.Duration(max)}
		if len(allow) > 0 {
			p.Commands = &resource.CommandRules{Allow: allow}
		}
		return p
	}
	e := mustCompile(t, Input{
		Users:      []*resource.User{{Name: "alice", Groups: []string{"ops"}}},
		Targets:    []*resource.Target{{Name: "web1", Auth: "certificate"}},
		Operations: []*resource.Operation{{Name: "iscsi", Patterns: []string{"^esxcli iscsi"}}},
		Policies: []*resource.Policy{
			pol("z-iscsi", 5*time.Minute, "@iscsi"),
			pol("m-open", 0),
			pol("b-hour", time.Hour),
		},
	})
	// alice named directly in a later-named policy: order of lists must
	// not decide which policy is reported.
	e.access.userTarget[pair{"alice", "web1"}] = []*compiled{e.access.byGroup["ops"][2]}
	d := e.Decide(Request{Kind: SubjectUser, Subject: "alice", Action: "exec", Target: "web1", TargetUser: "root", Command: "esxcli iscsi list"})
	if !d.Allow || d.Policy != "b-hour" || d.Operation != "iscsi" || d.MaxSession != 5*time.Minute {
		t.Fatalf("got %+v", d)
	}
}
