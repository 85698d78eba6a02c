package policy

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/resource"
)

// proxyInput is a site with one database target (pg), one SSH target (web)
// and proxy policies that exercise target users, databases, source
// networks, validity and statement rules.
func proxyInput() Input {
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	return Input{
		Users: []*resource.User{{Name: "alice", Groups: []string{"dba"}}, {Name: "bob"}, {Name: "carol"}},
		Targets: []*resource.Target{
			{Name: "pg", Address: "10.0.0.5:5432", Protocol: resource.ProtocolPostgres},
			{Name: "web", Address: "10.0.0.6:22"},
		},
		Accounts: []*resource.Account{
			{Target: "pg", Name: "postgres", Password: "x"},
			{Target: "pg", Name: "app", Password: "x"},
			{Target: "web", Name: "root"},
		},
		Operations: []*resource.Operation{{Name: "ddl", Patterns: []string{"^(CREATE|ALTER) "}}},
		Policies: []*resource.Policy{
			{Name: "dba", Type: resource.PolicyProxy, Subjects: resource.Subjects{Groups: []string{"dba"}},
				Targets: resource.TargetSelector{Names: []string{"pg"}}, TargetUsers: []string{"postgres", "app", "nobody"},
				Databases: []string{"db1", "app"}, Commands: &resource.CommandRules{Deny: []string{"^DROP ", "@ddl"}}},
			{Name: "bob-ro", Type: resource.PolicyProxy, Subjects: resource.Subjects{Users: []string{"bob"}},
				Targets: resource.TargetSelector{Names: []string{"pg", "web"}}, TargetUsers: []string{"app"},
				SourceCIDRs: []string{"10.1.0.0/16"}, Commands: &resource.CommandRules{Allow: []string{"^SELECT "}}},
			{Name: "carol-old", Type: resource.PolicyProxy, Subjects: resource.Subjects{Users: []string{"carol"}},
				Targets: resource.TargetSelector{Names: []string{"pg"}}, TargetUsers: []string{"app"}, ValidUntil: &past},
			// A target-access policy covering the database grants no
			// database session, and no SSH to it either.
			{Name: "ssh-all", Type: resource.PolicyTargetAccess, Subjects: resource.Subjects{Users: []string{"alice", "bob"}},
				Targets: resource.TargetSelector{Names: []string{"pg", "web"}}, TargetUsers: []string{"root", "postgres"}, Actions: []string{"shell"}},
		},
	}
}

func TestDecideProxy(t *testing.T) {
	e, err := Compile(proxyInput())
	if err != nil {
		t.Fatal(err)
	}
	in := netip.MustParseAddr("10.1.2.3")
	out := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name       string
		req        Request
		allow      bool
		reason     string   // part of the denial
		users      []string // TargetUsers when asked
		statements bool     // Statements set
	}{
		{name: "group grant", req: Request{Subject: "alice", Target: "pg", TargetUser: "postgres", Database: "db1", Source: out}, allow: true, statements: true},
		{name: "another database", req: Request{Subject: "alice", Target: "pg", TargetUser: "postgres", Database: "postgres", Source: out}, reason: `may not open database "postgres"`},
		{name: "database name case", req: Request{Subject: "alice", Target: "pg", TargetUser: "postgres", Database: "DB1", Source: out}, reason: "may not open database"},
		{name: "target user without account", req: Request{Subject: "alice", Target: "pg", TargetUser: "nobody", Database: "db1", Source: out}, reason: "may not log in to pg as nobody"},
		{name: "target users listed", req: Request{Subject: "alice", Target: "pg", Database: "db1", Source: out}, allow: true, users: []string{"app", "postgres"}},
		{name: "source outside", req: Request{Subject: "bob", Target: "pg", TargetUser: "app", Database: "any", Source: out}, reason: "from 192.0.2.1"},
		{name: "source inside, any database", req: Request{Subject: "bob", Target: "pg", TargetUser: "app", Database: "any", Source: in}, allow: true, statements: true},
		{name: "expired", req: Request{Subject: "carol", Target: "pg", TargetUser: "app", Database: "db1", Source: out}, reason: "validity window"},
		{name: "ssh target through proxy", req: Request{Subject: "bob", Target: "web", TargetUser: "root", Database: "db1", Source: in}, reason: "may not reach web"},
		{name: "unknown target", req: Request{Subject: "alice", Target: "nope", TargetUser: "postgres", Database: "db1", Source: out}, reason: "may not reach nope"},
		{name: "unknown user", req: Request{Subject: "mallory", Target: "pg", TargetUser: "postgres", Database: "db1", Source: out}, reason: "may not reach pg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.DecideProxy(tt.req)
			if d.Allow != tt.allow {
				t.Fatalf("Allow = %v (%s), want %v", d.Allow, d.Reason, tt.allow)
			}
			if tt.reason != "" && !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", d.Reason, tt.reason)
			}
			if tt.users != nil && strings.Join(d.TargetUsers, ",") != strings.Join(tt.users, ",") {
				t.Errorf("TargetUsers = %v, want %v", d.TargetUsers, tt.users)
			}
			if (d.Statements != nil) != tt.statements {
				t.Errorf("Statements set = %v, want %v", d.Statements != nil, tt.statements)
			}
		})
	}
	// The SSH front may not reach a database target even when a
	// target-access policy names it.
	if d := e.Decide(Request{Subject: "alice", Target: "pg", TargetUser: "postgres", Action: resource.ActionShell}); d.Allow {
		t.Errorf("Decide allowed SSH to a database target")
	}
}

func TestStatementRules(t *testing.T) {
	e, err := Compile(proxyInput())
	if err != nil {
		t.Fatal(err)
	}
	dba := e.DecideProxy(Request{Subject: "alice", Target: "pg", TargetUser: "postgres", Database: "db1"})
	ro := e.DecideProxy(Request{Subject: "bob", Target: "pg", TargetUser: "app", Database: "x", Source: netip.MustParseAddr("10.1.0.1")})
	tests := []struct {
		name    string
		rules   *StatementRules
		stmt    string
		refused bool
		reason  string
	}{
		{name: "deny pattern", rules: dba.Statements, stmt: "DROP TABLE t", refused: true, reason: "policy dba"},
		{name: "operation", rules: dba.Statements, stmt: "ALTER ROLE x SUPERUSER", refused: true, reason: "operation ddl"},
		{name: "not denied", rules: dba.Statements, stmt: "SELECT 1", refused: false},
		{name: "allow list", rules: ro.Statements, stmt: "SELECT 1", refused: false},
		{name: "outside allow list", rules: ro.Statements, stmt: "DELETE FROM t", refused: true, reason: "allowed list of policy bob-ro"},
		{name: "nil rules", rules: nil, stmt: "DROP TABLE t", refused: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refused, reason := tt.rules.Check(tt.stmt)
			if refused != tt.refused || !strings.Contains(reason, tt.reason) {
				t.Fatalf("Check(%q) = %v, %q; want %v, containing %q", tt.stmt, refused, reason, tt.refused, tt.reason)
			}
		})
	}
}
