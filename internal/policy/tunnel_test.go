package policy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/resource"
)

// TestDecideTunnelDestination: a tunnel reaches only what tunnels.to lists,
// or without it only the target host itself; a destination written in an
// encoding the target could read differently is refused outright.
func TestDecideTunnelDestination(t *testing.T) {
	in := Input{
		Users: []*resource.User{{Name: "alice"}, {Name: "bob"}},
		Targets: []*resource.Target{
			{Name: "web1", Address: "10.0.0.1:22"},
			{Name: "db1", Address: "DB1.internal.:2222"},
		},
		Accounts: []*resource.Account{{Target: "web1", Name: "root"}, {Target: "db1", Name: "root"}},
		Policies: []*resource.Policy{
			{Name: "alice-any", Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Users: []string{"alice"}},
				Targets: resource.TargetSelector{Names: []string{"web1", "db1"}}, TargetUsers: []string{"root"}, Actions: []string{"tunnel"}},
			{Name: "bob-listed", Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Users: []string{"bob"}},
				Targets: resource.TargetSelector{Names: []string{"web1"}}, TargetUsers: []string{"root"}, Actions: []string{"tunnel", "shell"},
				Tunnels: &resource.TunnelRules{To: []string{"127.0.0.1:5432", "db.internal:5432", "10.0.0.0/8:443", "[::1]:22"}}},
			// A second policy widens bob's reach: either one granting is enough.
			{Name: "bob-more", Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Users: []string{"bob"}},
				Targets: resource.TargetSelector{Names: []string{"web1"}}, TargetUsers: []string{"root"}, Actions: []string{"tunnel"},
				Tunnels: &resource.TunnelRules{To: []string{"cache.internal:*"}}},
		},
	}
	e := mustCompile(t, in)
	tests := []struct {
		who, target, dest string
		want              string // "" allowed, else part of the reason
	}{
		// Without tunnels.to: the target host itself, any port.
		{"alice", "web1", "10.0.0.1:5432", ""},
		{"alice", "web1", "127.0.0.1:8443", ""},
		{"alice", "web1", "localhost:22", ""},
		{"alice", "web1", "[::1]:22", ""},
		{"alice", "web1", "10.0.0.2:22", "reaches only web1 itself"},
		{"alice", "web1", "127.0.0.2:22", "reaches only web1 itself"},
		{"alice", "web1", "web1:22", "reaches only web1 itself"},
		{"alice", "db1", "db1.internal:5432", ""},
		{"alice", "db1", "10.0.0.1:22", "reaches only db1 itself"},
		// With tunnels.to.
		{"bob", "web1", "127.0.0.1:5432", ""},
		{"bob", "web1", "db.internal:5432", ""},
		{"bob", "web1", "10.9.8.7:443", ""},
		{"bob", "web1", "::1:22", "tunnel destination"}, // no brackets: not HOST:PORT
		{"bob", "web1", "[::1]:22", ""},
		{"bob", "web1", "cache.internal:6379", ""},
		{"bob", "web1", "10.0.0.1:22", "not in tunnels.to"}, // the target itself is not listed
		{"bob", "web1", "127.0.0.1:5433", "not in tunnels.to"},
		{"bob", "web1", "localhost:5432", "not in tunnels.to"},
		{"bob", "web1", "0x7f.1:5432", "non-standard form"},
		{"bob", "web1", "2130706433:5432", "non-standard form"},
		{"bob", "web1", "127.1:5432", "non-standard form"},
		{"bob", "web1", "127.0.0.1:0", "port 0"},
		{"bob", "web1", "127.0.0.1:70000", "port 70000"},
	}
	for _, tt := range tests {
		t.Run(tt.who+" "+tt.dest, func(t *testing.T) {
			d := e.Decide(Request{Kind: SubjectUser, Subject: tt.who, Action: resource.ActionTunnel, Target: tt.target,
				TargetUser: "root", Source: netip.MustParseAddr("192.0.2.1"), Destination: tt.dest})
			if tt.want == "" {
				if !d.Allow {
					t.Fatalf("denied: %s", d.Reason)
				}
				return
			}
			if d.Allow || !strings.Contains(d.Reason, tt.want) {
				t.Fatalf("allow %v reason %q, want denied with %q", d.Allow, d.Reason, tt.want)
			}
		})
	}
	// Other actions never look at a destination.
	if d := e.Decide(Request{Kind: SubjectUser, Subject: "bob", Action: resource.ActionShell, Target: "web1", TargetUser: "root",
		Source: netip.MustParseAddr("192.0.2.1"), Destination: "0x7f.1:1"}); !d.Allow {
		t.Fatalf("shell denied: %s", d.Reason)
	}
}
