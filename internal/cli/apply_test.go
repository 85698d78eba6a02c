package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// TestCLIApplyDryRun checks that apply --dry-run reports created, updated
// (with the field diff) and unchanged resources and changes nothing, and
// that apply warns when an update removes a field that had a value.
func TestCLIApplyDryRun(t *testing.T) {
	g := startGateway(t)
	key := userKey(t)
	base := fmt.Sprintf("kind: User\nname: carol\nemail: carol@example.com\nssh_keys: [%q]\n---\nkind: Target\nname: web1\naddress: 127.0.0.1:22\n---\nkind: Account\ntarget: web1\nname: deploy\n", key)
	g.run(t, base, "apply", "-f", "-").want(t, 0, []string{"User/carol created"}, nil)
	revision := func(t *testing.T) int64 {
		t.Helper()
		rev, err := g.st.Revision(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	pub := g.run(t, "", "account", "pubkey", "web1/deploy").stdout

	tests := []struct {
		name       string
		stream     string
		stdout     []string
		notStdout  []string
		stderr     []string
		notStderr  []string
		dryRunOnly bool
	}{
		{
			name:   "unchanged",
			stream: base,
			stdout: []string{"User/carol unchanged", "Target/web1 unchanged", "Account/web1/deploy unchanged"},
		},
		{
			name:   "created and updated with a field diff",
			stream: fmt.Sprintf("kind: User\nname: carol\nemail: c@example.org\nssh_keys: [%q]\n---\nkind: User\nname: dave\n", key),
			stdout: []string{"User/carol would be updated\n  email: \"carol@example.com\" -> \"c@example.org\"\n", "User/dave would be created"},
			// ssh_keys did not change, so it is not in the diff.
			notStdout:  []string{"ssh_keys"},
			notStderr:  []string{"removes"},
			dryRunOnly: true,
		},
		{
			name:      "a dropped field is a warning",
			stream:    "kind: User\nname: carol\nemail: carol@example.com\n",
			stdout:    []string{"User/carol would be updated\n  ssh_keys: [\"ssh-ed25519 ", "] -> (none)"},
			stderr:    []string{"document 1 (User carol): field ssh_keys had a value and this apply removes it"},
			notStderr: []string{"email"},
		},
		{
			// An Account applied without its key keeps it: not a removal.
			name:      "a kept secret is not dropped",
			stream:    "kind: Account\ntarget: web1\nname: deploy\n",
			stdout:    []string{"Account/web1/deploy unchanged"},
			notStderr: []string{"removes"},
		},
		{
			name:      "control characters in a value are shown escaped",
			stream:    "kind: User\nname: carol\nemail: \"x\\e[2Jy@example.com\"\nssh_keys: [" + fmt.Sprintf("%q", key) + "]\n",
			notStdout: []string{"\x1b"},
			stdout:    []string{`email: "carol@example.com" -> "x\u001b[2Jy@example.com"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := revision(t)
			r := g.run(t, tc.stream, "apply", "--dry-run", "-f", "-")
			r.want(t, 0, tc.stdout, append([]string{"dry run: nothing was changed"}, tc.stderr...))
			for _, s := range tc.notStdout {
				if strings.Contains(r.stdout, s) {
					t.Errorf("stdout holds %q:\n%s", s, r.stdout)
				}
			}
			for _, s := range tc.notStderr {
				if strings.Contains(r.stderr, s) {
					t.Errorf("stderr holds %q:\n%s", s, r.stderr)
				}
			}
			if after := revision(t); after != before {
				t.Errorf("dry run changed the store: revision %d -> %d", before, after)
			}
			g.run(t, "", "get", "user", "dave").want(t, 1, nil, nil)
			if got := g.run(t, "", "account", "pubkey", "web1/deploy").stdout; got != pub {
				t.Errorf("dry run changed the account key: %q -> %q", pub, got)
			}
			if tc.dryRunOnly {
				return
			}
			// The real apply warns the same way.
			g.run(t, tc.stream, "apply", "-f", "-").want(t, 0, nil, tc.stderr)
			g.run(t, base, "apply", "-f", "-").want(t, 0, nil, nil)
		})
	}
	// Nothing of the dry runs reached the audit trail: one apply event per
	// real apply only.
	r := g.run(t, "", "audit", "ls", "--type", "resource.apply", "--json")
	if n := strings.Count(r.stdout, `"type": "resource.apply"`); n != 9 {
		t.Errorf("%d resource.apply events, want 9 (the first apply and two per case that also applies):\n%s", n, r.stdout)
	}
}

// TestCLIAuditWide checks that audit ls -o wide shows the session of each
// event and the whole message, which the default table cuts.
func TestCLIAuditWide(t *testing.T) {
	g := startGateway(t)
	long := strings.Repeat("word ", 40) + "END"
	id, err := g.st.AppendAudit(context.Background(), store.AuditEvent{Type: "session.start", Outcome: "success",
		User: "alice", Target: "web1", SessionID: "sess-42", Policy: "p1", Message: long + "\x1b[2J"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args      []string
		code      int
		stdout    []string
		notStdout []string
		stderr    []string
	}{
		{[]string{"audit", "ls"}, 0, []string{"MESSAGE", "..."}, []string{"sess-42", "END"}, nil},
		{[]string{"audit", "ls", "-o", "wide"}, 0, []string{"ID", "SESSION", "POLICY", "sess-42", "p1", long + `\x1b[2J`, fmt.Sprint(id)}, []string{"\x1b"}, nil},
		{[]string{"audit", "ls", "--output", "json"}, 0, []string{`"session_id": "sess-42"`}, nil, nil},
		{[]string{"audit", "ls", "-o", "yaml"}, 2, nil, nil, []string{"want table, wide or json"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := g.run(t, "", tc.args...)
			r.want(t, tc.code, tc.stdout, tc.stderr)
			for _, s := range tc.notStdout {
				if strings.Contains(r.stdout, s) {
					t.Errorf("stdout holds %q:\n%s", s, r.stdout)
				}
			}
		})
	}
}

// TestCLITargetHostKey checks that get shows the host key the gateway
// learned for an unpinned target, that applying get's output back changes
// nothing, and that target pin makes it the pinned key.
func TestCLITargetHostKey(t *testing.T) {
	g := startGateway(t)
	g.run(t, "kind: Target\nname: web1\naddress: 127.0.0.1:22\n---\nkind: Target\nname: new1\naddress: 127.0.0.1:23\n---\nkind: Target\nname: other\naddress: 127.0.0.1:24\nhost_key: "+testHostKeyB+"\n",
		"apply", "-f", "-").want(t, 0, nil, nil)
	for target, key := range map[string]string{"web1": testHostKeyA, "other": testHostKeyA} {
		if err := g.st.RecordHostKey(context.Background(), store.HostKey{Target: target, Key: key, FirstSeen: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
	}
	yaml := g.run(t, "", "get", "target", "web1", "-o", "yaml")
	yaml.want(t, 0, []string{"learned_host_key: " + testHostKeyA}, nil)
	g.run(t, "", "get", "target", "web1", "--json").want(t, 0, []string{`"learned_host_key": "` + testHostKeyA}, nil)
	// A file made from get -o yaml applies back unchanged: the learned
	// key is status, not spec.
	g.run(t, yaml.stdout, "apply", "-f", "-").want(t, 0, []string{"Target/web1 unchanged"}, nil)

	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"target", "pin", "web1"}, 0, "Target/web1 pinned to SHA256:", ""},
		{[]string{"target", "pin", "web1"}, 0, "Target/web1 already pinned to SHA256:", ""},
		{[]string{"target", "pin", "new1"}, 1, "", "has not learned a host key for Target \"new1\" yet"},
		{[]string{"target", "pin", "other"}, 1, "", "another host_key pinned"},
		{[]string{"target", "pin", "nowhere"}, 1, "", `Target "nowhere" not found`},
		{[]string{"target", "pin"}, 2, "", "want one target NAME"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			g.run(t, "", tc.args...).want(t, tc.code, []string{tc.stdout}, []string{tc.stderr})
		})
	}
	r := g.run(t, "", "get", "target", "web1", "-o", "yaml")
	r.want(t, 0, []string{"host_key: " + testHostKeyA}, nil)
	if strings.Contains(r.stdout, "learned_host_key") {
		t.Errorf("a pinned target still shows a learned key:\n%s", r.stdout)
	}
	g.run(t, "", "audit", "ls", "--type", "resource.apply", "-o", "wide").want(t, 0, []string{"1 updated"}, nil)
}

// Two valid ed25519 host keys.
const (
	testHostKeyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	testHostKeyB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEqJQ0tY0fbfUMdLh/eSU7L6293OYwDkLwl7lGirAzww"
)

// TestCLIKindCase checks that apply takes kinds in any case, as get does,
// and stores the canonical name.
func TestCLIKindCase(t *testing.T) {
	g := startGateway(t)
	g.run(t, "kind: target\nname: web1\naddress: 127.0.0.1:22\n---\nkind: USER\nname: bob\n", "apply", "-f", "-").want(t, 0,
		[]string{"Target/web1 created", "User/bob created"}, nil)
	g.run(t, "", "get", "TARGET", "web1", "-o", "yaml").want(t, 0, []string{"kind: Target\n"}, nil)
	g.run(t, "kind: targets\nname: web2\naddress: 127.0.0.1:22\n", "apply", "-f", "-").want(t, 2, nil, []string{`field kind: write "Target", not "targets"`})
	g.run(t, "kind: User\nname: carol\nemail: [x\n", "apply", "-f", "-").want(t, 2, nil, []string{"stdin: document 1: invalid YAML near line 3: did not find expected ',' or ']'"})
}

// TestCLIGroupMembers checks that get groups shows the members a group has
// through users' own groups lists, not only its members list.
func TestCLIGroupMembers(t *testing.T) {
	g := startGateway(t)
	g.run(t, "kind: Group\nname: ops\nmembers: [bob]\n---\nkind: Group\nname: dev\n---\nkind: User\nname: alice\ngroups: [ops, dev]\n---\nkind: User\nname: bob\n---\nkind: User\nname: carol\ngroups: [ops]\n",
		"apply", "-f", "-").want(t, 0, nil, nil)
	for _, args := range [][]string{{"get", "groups"}, {"get", "group", "ops"}, {"get", "all"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := g.run(t, "", args...)
			r.want(t, 0, []string{"ops", "alice,bob,carol"}, nil)
		})
	}
	// The stored resource is unchanged: yaml shows the Group as applied.
	r := g.run(t, "", "get", "group", "ops", "-o", "yaml")
	r.want(t, 0, []string{"members:\n  - bob\n"}, nil)
	if strings.Contains(r.stdout, "carol") {
		t.Errorf("-o yaml shows computed members:\n%s", r.stdout)
	}
}
