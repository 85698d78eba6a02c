package policy

import (
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/shellcmd"
)

// testInput is a small site that exercises every way a policy can reach a
// subject, a target and a target user:
//
//   - alice has an email (login name alice.smith) and lists group ops on
//     herself; bob is in group dev through the Group's members and has no
//     email; carol is in no group; dave only has a policy with a prefix
//     written in IPv4-mapped form; stats is a service account.
//   - web1 and web2 use keys (accounts needed); db1 trusts the gateway's
//     certificate authority (no accounts needed); lonely has no policy.
func testInput() Input {
	return Input{
		Users: []*resource.User{
			{Name: "alice", Email: "alice.smith@example.com", Groups: []string{"ops"}},
			{Name: "bob"},
			{Name: "carol"},
			{Name: "dave"},
		},
		ServiceAccounts: []*resource.ServiceAccount{{Name: "stats", Owner: "group:ops"}},
		Groups: []*resource.Group{
			// ghost does not exist: a directory may add it later.
			{Name: "dev", Members: []string{"bob", "ghost"}},
			{Name: "ops"},
		},
		Targets: []*resource.Target{
			{Name: "web1", Address: "10.0.0.1:22", Labels: map[string]string{"env": "prod", "role": "web"}},
			{Name: "web2", Address: "10.0.0.2:22", Labels: map[string]string{"env": "staging", "role": "web"}, Auth: resource.AuthKey},
			{Name: "db1", Address: "10.0.0.3:22", Labels: map[string]string{"env": "prod", "role": "db"}, Auth: resource.AuthCertificate},
			{Name: "lonely", Address: "10.0.0.4:22"},
		},
		Environments: []*resource.Environment{
			{Name: "prod", Selector: map[string]string{"env": "prod"}},
			{Name: "staging", Targets: []string{"web2"}},
		},
		Accounts: []*resource.Account{
			{Target: "web1", Name: "root"},
			{Target: "web1", Name: "alice.smith"},
			{Target: "web1", Name: "deploy"},
			{Target: "web1", Name: "bob"},
			{Target: "web1", Name: "stats"},
			{Target: "web2", Name: "root"},
			{Target: "web2", Name: "bob"},
		},
		Operations: []*resource.Operation{
			{Name: "iscsi.configure", Patterns: []string{"^esxcli iscsi", "^esxcfg-"}},
			{Name: "danger", Patterns: []string{"rm -rf"}},
		},
		Policies: []*resource.Policy{
			{Name: "alice-web1", Type: resource.PolicyTargetAccess,
				Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"web1"}},
				// nobody has no account on web1, so it is never usable there.
				TargetUsers: []string{"root", "{username}", "nobody"}, Actions: []string{"shell", "exec"}},
			{Name: "ops-web1", Type: resource.PolicyTargetAccess,
				Subjects: resource.Subjects{Groups: []string{"ops"}}, Targets: resource.TargetSelector{Names: []string{"web1"}},
				TargetUsers: []string{"deploy", "root"}, Actions: []string{"shell"}},
			{Name: "ops-db", Type: resource.PolicyTargetAccess,
				Subjects: resource.Subjects{Groups: []string{"ops"}}, Targets: resource.TargetSelector{Labels: map[string]string{"role": "db"}},
				TargetUsers: []string{"postgres", "{username}"}, Actions: []string{"shell"}},
			{Name: "dev-staging", Type: resource.PolicyTargetAccess,
				Subjects: resource.Subjects{Groups: []string{"dev"}}, Targets: resource.TargetSelector{Environments: []string{"staging"}},
				TargetUsers: []string{"root", "{username}"}, Actions: []string{"shell", "file-transfer"}, SourceCIDRs: []string{"10.0.0.0/8"}},
			{Name: "bob-web1", Type: resource.PolicyTargetAccess,
				Subjects: resource.Subjects{Users: []string{"bob"}}, Targets: resource.TargetSelector{Names: []string{"web1"}},
				TargetUsers: []string{"{username}"}, Actions: []string{"exec"}, Commands: &resource.CommandRules{Deny: []string{"^sudo "}}},
			{Name: "carol-prod", Type: resource.PolicyTargetAccess,
				Subjects: resource.Subjects{Users: []string{"carol"}}, Targets: resource.TargetSelector{Environments: []string{"prod"}},
				TargetUsers: []string{"root"}, Actions: []string{"tunnel"}},
			{Name: "carol-web2", Type: resource.PolicyTargetAccess,
				Subjects: resource.Subjects{Users: []string{"carol"}}, Targets: resource.TargetSelector{Names: []string{"web2"}},
				TargetUsers: []string{"nobody"}, Actions: []string{"shell"}},
			{Name: "dave-mapped", Type: resource.PolicyTargetAccess,
				Subjects: resource.Subjects{Users: []string{"dave"}}, Targets: resource.TargetSelector{Names: []string{"web1"}},
				TargetUsers: []string{"root"}, Actions: []string{"shell"}, SourceCIDRs: []string{"::ffff:10.1.0.0/112"}},
			{Name: "stats-web1", Type: resource.PolicyTargetAccess,
				Subjects: resource.Subjects{ServiceAccounts: []string{"stats"}}, Targets: resource.TargetSelector{Names: []string{"web1"}},
				TargetUsers: []string{"deploy", "{username}"}, Actions: []string{"exec"},
				SourceCIDRs: []string{"192.168.1.0/24", "2001:db8::/32"}, Autologin: true,
				Commands: &resource.CommandRules{Allow: []string{"^uptime$", "@iscsi.configure"}, Deny: []string{"@danger", "; "}}},
			// Types other than target-access are not this engine's; one
			// naming alice everywhere must grant nothing.
			{Name: "future", Type: "jit",
				Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"lonely"}},
				TargetUsers: []string{"root"}, Actions: []string{"shell"}},
		},
	}
}

func mustCompile(t testing.TB, in Input) *Engine {
	t.Helper()
	e, err := Compile(in)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}

var (
	office  = netip.MustParseAddr("10.1.2.3")
	home    = netip.MustParseAddr("203.0.113.9")
	scripts = netip.MustParseAddr("192.168.1.10")
)

func userReq(name, action, target, targetUser string) Request {
	return Request{Kind: SubjectUser, Subject: name, Action: action, Target: target, TargetUser: targetUser, Source: office}
}

func TestDecide(t *testing.T) {
	e := mustCompile(t, testInput())
	from := func(r Request, a netip.Addr) Request { r.Source = a; return r }
	svc := func(targetUser, command string) Request {
		return Request{Kind: SubjectServiceAccount, Subject: "stats", Action: "exec", Target: "web1", TargetUser: targetUser, Source: scripts, Command: command}
	}
	tests := []struct {
		name string
		req  Request
		want Decision
	}{
		// Who: a user named directly, through a Group's members, through
		// the user's own groups list, and a service account.
		{name: "user direct", req: userReq("alice", "shell", "web1", "root"), want: Decision{Allow: true, Policy: "alice-web1"}},
		{name: "user via own groups", req: userReq("alice", "shell", "web1", "deploy"), want: Decision{Allow: true, Policy: "ops-web1"}},
		{name: "user via group members", req: userReq("bob", "shell", "web2", "root"), want: Decision{Allow: true, Policy: "dev-staging"}},
		{name: "service account", req: svc("deploy", "uptime"), want: Decision{Allow: true, Policy: "stats-web1"}},
		// A service account's name is not a user's: the kind is part of who.
		{name: "user name as service account", req: Request{Kind: SubjectServiceAccount, Subject: "alice", Action: "shell", Target: "web1", TargetUser: "root"},
			want: Decision{Reason: "access denied: alice may not reach web1"}},
		{name: "service account name as user", req: userReq("stats", "exec", "web1", "deploy"),
			want: Decision{Reason: "access denied: stats may not reach web1"}},
		{name: "unknown user", req: userReq("mallory", "shell", "web1", "root"), want: Decision{Reason: "access denied: mallory may not reach web1"}},
		{name: "direct policy, other action", req: userReq("carol", "shell", "web1", "root"), want: Decision{Reason: "access denied: carol is not granted shell on web1"}},

		// {username}: the email's local part, else the name.
		{name: "username from email", req: userReq("alice", "exec", "web1", "alice.smith"), want: Decision{Allow: true, Policy: "alice-web1"}},
		{name: "username is not the name when there is an email", req: userReq("alice", "exec", "web1", "alice"),
			want: Decision{Reason: "access denied: alice may not log in to web1 as alice"}},
		{name: "username from name", req: userReq("bob", "shell", "web2", "bob"), want: Decision{Allow: true, Policy: "dev-staging"}},
		{name: "username of another", req: userReq("bob", "shell", "web2", "alice.smith"),
			want: Decision{Reason: "access denied: bob may not log in to web2 as alice.smith"}},
		{name: "username of a service account", req: svc("stats", "uptime"), want: Decision{Allow: true, Policy: "stats-web1"}},

		// Key-auth targets need an Account for the target user; a target
		// trusting the gateway's certificate authority does not.
		{name: "key target without account", req: userReq("alice", "shell", "web1", "nobody"),
			want: Decision{Reason: "access denied: alice may not log in to web1 as nobody"}},
		{name: "certificate target without account", req: userReq("alice", "shell", "db1", "postgres"), want: Decision{Allow: true, Policy: "ops-db"}},
		{name: "certificate target username", req: userReq("alice", "shell", "db1", "alice.smith"), want: Decision{Allow: true, Policy: "ops-db"}},
		{name: "certificate target ungranted user", req: userReq("alice", "shell", "db1", "root"),
			want: Decision{Reason: "access denied: alice may not log in to db1 as root"}},

		// Source addresses.
		{name: "source inside", req: from(userReq("bob", "shell", "web2", "root"), netip.MustParseAddr("10.255.0.1")), want: Decision{Allow: true, Policy: "dev-staging"}},
		{name: "source outside", req: from(userReq("bob", "shell", "web2", "root"), home),
			want: Decision{Reason: "access denied: bob may not reach web2 from 203.0.113.9"}},
		// A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
		{name: "source ipv4-mapped", req: from(userReq("bob", "shell", "web2", "root"), netip.MustParseAddr("::ffff:10.1.2.3")), want: Decision{Allow: true, Policy: "dev-staging"}},
		{name: "source ipv4-mapped outside", req: from(userReq("bob", "shell", "web2", "root"), netip.MustParseAddr("::ffff:11.1.2.3")),
			want: Decision{Reason: "access denied: bob may not reach web2 from ::ffff:11.1.2.3"}},
		{name: "source ipv6", req: from(svc("deploy", "uptime"), netip.MustParseAddr("2001:db8::42")), want: Decision{Allow: true, Policy: "stats-web1"}},
		{name: "source ipv6 outside", req: from(svc("deploy", "uptime"), netip.MustParseAddr("2001:db9::42")),
			want: Decision{Reason: "access denied: stats may not reach web1 from 2001:db9::42"}},
		{name: "source missing", req: from(userReq("bob", "shell", "web2", "root"), netip.Addr{}),
			want: Decision{Reason: "access denied: bob may not reach web2 from invalid IP"}},
		// Only policy explain asks about any source; a front never does.
		{name: "any source, explain only", req: func() Request {
			r := from(userReq("bob", "shell", "web2", "root"), netip.Addr{})
			r.AnySource = true
			return r
		}(), want: Decision{Allow: true, Policy: "dev-staging"}},
		{name: "no cidrs means anywhere", req: from(userReq("alice", "shell", "web1", "root"), home), want: Decision{Allow: true, Policy: "alice-web1"}},
		// A prefix written in IPv4-mapped form matches both spellings.
		{name: "mapped prefix ipv4 source", req: userReq("dave", "shell", "web1", "root"), want: Decision{Allow: true, Policy: "dave-mapped"}},
		{name: "mapped prefix mapped source", req: from(userReq("dave", "shell", "web1", "root"), netip.MustParseAddr("::ffff:10.1.200.1")), want: Decision{Allow: true, Policy: "dave-mapped"}},
		{name: "mapped prefix outside", req: from(userReq("dave", "shell", "web1", "root"), netip.MustParseAddr("10.2.0.1")),
			want: Decision{Reason: "access denied: dave may not reach web1 from 10.2.0.1"}},

		// Actions are separate grants.
		{name: "action granted", req: userReq("bob", "file-transfer", "web2", "root"), want: Decision{Allow: true, Policy: "dev-staging"}},
		{name: "action not granted", req: userReq("bob", "tunnel", "web2", "root"), want: Decision{Reason: "access denied: bob is not granted tunnel on web2"}},
		{name: "tunnel only", req: userReq("carol", "tunnel", "web1", "root"), want: Decision{Allow: true, Policy: "carol-prod"}},
		{name: "unknown action", req: userReq("alice", "sudo", "web1", "root"), want: Decision{Reason: "access denied: alice is not granted sudo on web1"}},
		{name: "empty action", req: userReq("alice", "", "web1", "root"), want: Decision{Reason: "access denied: alice is not granted  on web1"}},

		// Which targets a policy covers: environment by selector (web1 and
		// db1 carry env=prod), environment by names, labels.
		{name: "environment selector", req: userReq("carol", "tunnel", "db1", "root"), want: Decision{Allow: true, Policy: "carol-prod"}},
		{name: "environment selector excludes", req: userReq("carol", "tunnel", "web2", "root"),
			want: Decision{Reason: "access denied: carol is not granted tunnel on web2"}},
		{name: "environment names", req: userReq("bob", "shell", "web2", "root"), want: Decision{Allow: true, Policy: "dev-staging"}},
		{name: "environment names excludes", req: userReq("bob", "shell", "db1", "root"), want: Decision{Reason: "access denied: bob may not reach db1"}},
		{name: "label selector excludes", req: userReq("alice", "shell", "web2", "root"), want: Decision{Reason: "access denied: alice may not reach web2"}},
		{name: "other policy type ignored", req: userReq("alice", "shell", "lonely", "root"), want: Decision{Reason: "access denied: alice may not reach lonely"}},

		// Listing target users: the sorted union over every policy, only
		// those usable on the target, no duplicates, no policy named.
		{name: "list union", req: userReq("alice", "shell", "web1", ""), want: Decision{Allow: true, TargetUsers: []string{"alice.smith", "deploy", "root"}}},
		{name: "list one policy", req: userReq("alice", "exec", "web1", ""), want: Decision{Allow: true, TargetUsers: []string{"alice.smith", "root"}}},
		{name: "list certificate", req: userReq("alice", "shell", "db1", ""), want: Decision{Allow: true, TargetUsers: []string{"alice.smith", "postgres"}}},
		{name: "list service account", req: svc("", ""), want: Decision{Allow: true, TargetUsers: []string{"deploy", "stats"}}},
		{name: "list none usable", req: userReq("carol", "shell", "web2", ""), want: Decision{Reason: "access denied: no target user on web2 that carol may use"}},
		{name: "list denied", req: userReq("carol", "shell", "lonely", ""), want: Decision{Reason: "access denied: carol may not reach lonely"}},

		// Command rules: deny wins over allow, an allow list admits only
		// what it matches, and an operation that matched is named.
		{name: "command allowed inline", req: svc("deploy", "uptime"), want: Decision{Allow: true, Policy: "stats-web1"}},
		{name: "command allowed by operation", req: svc("deploy", "esxcli iscsi adapter list"), want: Decision{Allow: true, Policy: "stats-web1", Operation: "iscsi.configure"}},
		{name: "command allowed by second pattern", req: svc("deploy", "esxcfg-nics -l"), want: Decision{Allow: true, Policy: "stats-web1", Operation: "iscsi.configure"}},
		{name: "command not allowed", req: svc("deploy", "uptime -p"), want: Decision{Reason: "access denied: command not in the allowed list of policy stats-web1"}},
		{name: "command empty", req: svc("deploy", ""), want: Decision{Reason: "access denied: command not in the allowed list of policy stats-web1"}},
		{name: "command denied by operation", req: svc("deploy", "rm -rf /"), want: Decision{Reason: "access denied: command denied by operation danger (policy stats-web1)", Operation: "danger"}},
		{name: "each command must be allowed", req: svc("deploy", "esxcli iscsi; reboot"), want: Decision{Reason: "access denied: command not in the allowed list of policy stats-web1"}},
		{name: "deny wins over allowed operation", req: svc("deploy", "esxcli iscsi x && rm -rf /"), want: Decision{Reason: "access denied: command denied by operation danger (policy stats-web1)", Operation: "danger"}},
		{name: "deny only list", req: userReq("bob", "exec", "web1", "bob"), want: Decision{Allow: true, Policy: "bob-web1"}},
		{name: "deny only list denies", req: Request{Kind: SubjectUser, Subject: "bob", Action: "exec", Target: "web1", TargetUser: "bob", Command: "sudo reboot"},
			want: Decision{Reason: "access denied: command denied by policy bob-web1"}},
		// Command rules restrict exec; other actions carry no command.
		{name: "rules ignored for shell", req: userReq("alice", "shell", "web1", "root"), want: Decision{Allow: true, Policy: "alice-web1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.Decide(tt.req)
			// Obligations have their own test.
			got.Obligations = Obligations{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Decide(%+v)\n got %+v\nwant %+v", tt.req, got, tt.want)
			}
		})
	}
}

func TestDecideHidesWhatExists(t *testing.T) {
	// DESIGN section 1: an unknown target and a target the user may not
	// reach get the same message; so does an unknown user.
	e := mustCompile(t, testInput())
	norm := func(d Decision, target string) Decision {
		d.Reason = strings.ReplaceAll(d.Reason, target, "TARGET")
		return d
	}
	for _, subject := range []Request{
		userReq("alice", "shell", "", "root"),
		userReq("alice", "shell", "", ""),
		userReq("carol", "exec", "", "root"),
		userReq("nobody-at-all", "shell", "", "root"),
		{Kind: SubjectServiceAccount, Subject: "stats", Action: "exec", TargetUser: "deploy", Source: scripts, Command: "uptime"},
	} {
		unknown, noPolicy := subject, subject
		unknown.Target, noPolicy.Target = "no-such-target", "lonely"
		a, b := norm(e.Decide(unknown), "no-such-target"), norm(e.Decide(noPolicy), "lonely")
		if a.Allow || b.Allow || a.Reason == "" || !reflect.DeepEqual(a, b) {
			t.Errorf("%s: unknown target %+v and target without policy %+v differ", subject.Subject, a, b)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	// Validation and inventory should catch these first; Compile must still
	// refuse rather than build an engine that silently grants less or more.
	base := func(mod func(*resource.Policy)) Input {
		p := &resource.Policy{Name: "broken", Type: resource.PolicyTargetAccess,
			Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"web1"}},
			TargetUsers: []string{"root"}, Actions: []string{"exec"}}
		mod(p)
		return Input{Policies: []*resource.Policy{p}}
	}
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{name: "missing environment", in: base(func(p *resource.Policy) { p.Targets.Environments = []string{"prod"} }), want: `environment "prod" does not exist`},
		{name: "missing operation", in: base(func(p *resource.Policy) { p.Commands = &resource.CommandRules{Allow: []string{"@nope"}} }), want: `commands.allow: operation "nope" does not exist`},
		{name: "bad deny pattern", in: base(func(p *resource.Policy) { p.Commands = &resource.CommandRules{Deny: []string{"("}} }), want: "commands.deny"},
		{name: "bad cidr", in: base(func(p *resource.Policy) { p.SourceCIDRs = []string{"10.0.0.0/99"} }), want: "source_cidrs"},
		{name: "bad operation pattern", in: func() Input {
			in := base(func(p *resource.Policy) { p.Commands = &resource.CommandRules{Deny: []string{"@op"}} })
			in.Operations = []*resource.Operation{{Name: "op", Patterns: []string{"["}}}
			return in
		}(), want: `operation "op"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `policy "broken"`) {
				t.Fatalf("Compile error = %v, want one naming the policy and containing %q", err, tt.want)
			}
		})
	}
}

func TestEngineAccessors(t *testing.T) {
	e := mustCompile(t, testInput())
	if got := e.PolicyCount(); got != len(testInput().Policies) {
		t.Errorf("PolicyCount() = %d", got)
	}
	if tg := e.Target("db1"); tg == nil || tg.AuthMode() != resource.AuthCertificate {
		t.Errorf("Target(db1) = %+v", tg)
	}
	if tg := e.Target("nope"); tg != nil {
		t.Errorf("Target(nope) = %+v", tg)
	}
	// An empty site denies everything without panicking.
	empty := mustCompile(t, Input{})
	if d := empty.Decide(userReq("alice", "shell", "web1", "")); d.Allow || d.Reason != "access denied: alice may not reach web1" {
		t.Errorf("empty engine: %+v", d)
	}
}

func TestCompileDoesNotAliasInput(t *testing.T) {
	// Engines are swapped atomically while old ones still answer; changing
	// the resources afterwards must not change an engine already built.
	in := testInput()
	e := mustCompile(t, in)
	in.Users[0].Groups[0] = "dev"
	in.Groups[0].Members = append(in.Groups[0].Members, "alice")
	if d := e.Decide(userReq("alice", "shell", "web1", "deploy")); !d.Allow || d.Policy != "ops-web1" {
		t.Fatalf("engine changed with its input: %+v", d)
	}
}

func FuzzCommandRules(f *testing.F) {
	f.Add("^uptime$", "rm -rf", "^esxcli", "uptime")
	f.Add("@op", "", "^esxcli iscsi", "esxcli iscsi list")
	f.Add("", "@op", "sudo", "sudo reboot")
	f.Add("(", ")", "[", "x")
	f.Add("^a*$", "b{2,1000}", "\\x00", "aaaa\x00")
	f.Add("@", "@missing", "", "")
	f.Add("(?i)SELECT", "(?s).*;.*", "^\\p{L}+$", "select 1;\nselect 2")
	f.Fuzz(func(t *testing.T, allow, deny, opPattern, cmd string) {
		rules := &resource.CommandRules{}
		if allow != "" {
			rules.Allow = []string{allow}
		}
		if deny != "" {
			rules.Deny = []string{deny}
		}
		in := Input{
			Users:      []*resource.User{{Name: "alice"}},
			Targets:    []*resource.Target{{Name: "web1", Auth: resource.AuthCertificate}},
			Operations: []*resource.Operation{{Name: "op", Patterns: []string{opPattern}}},
			Policies: []*resource.Policy{{Name: "p", Type: resource.PolicyTargetAccess,
				Subjects: resource.Subjects{Users: []string{"alice"}}, Targets: resource.TargetSelector{Names: []string{"web1"}},
				TargetUsers: []string{"root"}, Actions: []string{"exec"}, Commands: rules}},
		}
		e, err := Compile(in)
		if err != nil {
			return
		}
		d := e.Decide(Request{Kind: SubjectUser, Subject: "alice", Action: "exec", Target: "web1", TargetUser: "root", Command: cmd})
		if d.Allow == (d.Reason != "") {
			t.Fatalf("Allow=%v with Reason %q", d.Allow, d.Reason)
		}
		if d.Allow && d.Policy != "p" {
			t.Fatalf("allowed by %q", d.Policy)
		}
		// The properties the rules promise, checked against the patterns
		// directly on the commands the shell would run: an inline deny that
		// matches one always denies, with an allow list nothing unmatched is
		// allowed, and what cannot be judged is denied.
		res := shellcmd.Parse(cmd)
		if d.Allow && res.Unjudgeable != "" {
			t.Fatalf("command %q allowed though %s", cmd, res.Unjudgeable)
		}
		for _, c := range res.Commands {
			if d.Allow && deny != "" && !strings.HasPrefix(deny, "@") && slices.ContainsFunc(c.Forms, func(f string) bool { return mustMatch(t, deny, f) }) {
				t.Fatalf("command %q allowed though deny %q matches %q", cmd, deny, c.Forms)
			}
			if d.Allow && allow != "" && !strings.HasPrefix(allow, "@") && !slices.ContainsFunc(c.Runs, func(f string) bool { return mustMatch(t, allow, f) }) {
				t.Fatalf("command %q allowed though allow %q does not match %q", cmd, allow, c.Runs)
			}
		}
		if d.Operation != "" && d.Operation != "op" {
			t.Fatalf("operation %q", d.Operation)
		}
	})
}

// mustMatch reports whether pattern, which Compile already accepted,
// matches s.
func mustMatch(t *testing.T, pattern, s string) bool {
	t.Helper()
	return regexp.MustCompile(pattern).MatchString(s)
}

func TestDecideAllowedDoesNotAllocate(t *testing.T) {
	// Decide is on every session, exec and forward: an allowed request must
	// cost no garbage (it allocates only for a denial reason or a list of
	// target users). Counting allocations is deterministic, unlike timing.
	e := mustCompile(t, testInput())
	for _, r := range []Request{
		userReq("alice", "shell", "web1", "deploy"), // through a group, second candidate list
		userReq("bob", "shell", "web2", "bob"),
		// No command rules here: regexp keeps its matchers in a sync.Pool,
		// which drops entries at random under -race by design.
		userReq("alice", "exec", "web1", "alice.smith"),
		userReq("carol", "tunnel", "db1", "root"),
	} {
		if d := e.Decide(r); !d.Allow {
			t.Fatalf("%+v denied: %s", r, d.Reason)
		}
		if n := testing.AllocsPerRun(100, func() { e.Decide(r) }); n != 0 {
			t.Errorf("Decide(%+v) allocates %v times", r, n)
		}
	}
}
